"""Secrets: provider API keys by their documented prefixes, private key blocks, JWTs and bearer tokens, passwords
in config-like text (`password = ...`, `"api_key": "..."`) and in connection strings (`scheme://user:pass@host`).

Placeholders are not secrets: `${DB_PASSWORD}`, `<your key>`, `os.environ[...]`, `****`, `YOUR_API_KEY`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from hybrid_router.privacy.kinds import Finding, PrivacyKind

_API_KEYS = re.compile(
    r"(?<![\w-])(?:"
    r"(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}"  # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{36,255}"  # GitHub tokens
    r"|github_pat_[A-Za-z0-9_]{60,255}"
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|sk-ant-[A-Za-z0-9_-]{20,}"  # Anthropic
    r"|sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"  # OpenAI
    r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API key
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|SG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}"  # SendGrid
    r"|SK[0-9a-f]{32}"  # Twilio
    r"|npm_[A-Za-z0-9]{36}"  # npm
    r"|pypi-AgE[A-Za-z0-9_-]{50,}"  # PyPI
    r"|hf_[A-Za-z0-9]{30,}"  # Hugging Face
    r"|dop_v1_[a-f0-9]{64}"  # DigitalOcean
    r")(?![\w-])"
)
_PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_JWT = re.compile(r"(?<![\w-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}(?![\w-])")
_BEARER = re.compile(r"\bBearer\s+([A-Za-z0-9._~+/-]{16,}=*)", re.IGNORECASE)
_SECRET_KEYS = (
    r"password|passwd|pwd|pass|passphrase|secret|client_secret|secret_key|api_key|apikey|access_key|"
    r"access_token|auth_token|private_key|token"
)
# key = value, key: value, "key": "value"; the key alone or ending a longer name (DB_PASSWORD, aws_secret_key).
_ASSIGNMENT = re.compile(
    rf"(?i)(?<![\w.-])[\"']?(?:[\w.-]{{0,64}}[_.-])?(?:{_SECRET_KEYS})[\"']?(\s*[:=]\s*|\s+=>\s+)[\"']?"
    r"([^\s\"',;]{1,256})"
)
_CONNECTION = re.compile(r"\b[a-z][a-z0-9+.-]{1,20}://[^\s:/@]{1,256}:([^\s/]{1,256})@[\w.-]+", re.IGNORECASE)
# Prose: "my wifi password is Tiger5711*", "is "K8IOLcsG7ZD" a strong password?"
_PASSWORD_PROSE = re.compile(
    r"(?i)\b(?:password|passcode|passphrase|pin)\s+(?:is|was|=)\s+[\"'`]?([^\s\"'`,;]+)"
    r"|[\"'`]([^\s\"'`]{6,256})[\"'`]\s+(?:a|as|an)\s+(?:good|strong|secure|safe|weak|valid|decent)\s+"
    r"(?:password|passphrase)"
)
_PLACEHOLDER_WORDS = {
    "password", "passwd", "secret", "token", "changeme", "none", "null", "nil", "true", "false", "string", "str",
    "required", "optional", "redacted", "hidden", "example", "test", "dummy", "placeholder", "undefined", "xxx",
    "pass", "mypassword", "yourpassword", "your_password", "your-password", "your_api_key", "your_token",
}  # fmt: skip


def placeholder(value: str) -> bool:
    """A value that stands for a secret without being one: a variable, a template, masked, or a stock word."""
    stripped = value.strip("\"'`")
    if len(stripped) < 6 or stripped.lower() in _PLACEHOLDER_WORDS:
        return True
    if stripped[0] in "$%<{[(*." or stripped.endswith(("(", ")", "]", "}", ">")) or "(" in stripped:
        return True
    if len(set(stripped)) <= 2:  # ******, xxxxxx, 000000
        return True
    if re.fullmatch(r"[A-Z][A-Z0-9_]*_[A-Z0-9_]+", stripped) or stripped.lower().startswith(("your", "my_", "<")):
        return True
    return stripped.startswith(("os.", "env.", "process.env", "settings.", "config.", "self.", "args."))


def api_keys(text: str) -> Iterator[Finding]:
    for match in _API_KEYS.finditer(text):
        yield Finding(PrivacyKind.API_KEY, match.start(), match.end())


def private_keys(text: str) -> Iterator[Finding]:
    if "PRIVATE KEY" not in text:
        return
    position = 0
    while match := _PRIVATE_KEY.search(text, position):
        end = text.find("-----END", match.end())
        close = text.find("-----", end + 8) if end >= 0 else -1
        position = close + 5 if close >= 0 else len(text)  # the block ends there (or runs to the end of the text)
        yield Finding(PrivacyKind.PRIVATE_KEY, match.start(), position)


def tokens(text: str) -> Iterator[Finding]:
    for match in _JWT.finditer(text):
        yield Finding(PrivacyKind.TOKEN, match.start(), match.end())
    for match in _BEARER.finditer(text):
        value = match.group(1)
        if not placeholder(value) and not _JWT.fullmatch(value):
            yield Finding(PrivacyKind.TOKEN, match.start(1), match.end(1))


def passwords(text: str) -> Iterator[Finding]:
    for match in _ASSIGNMENT.finditer(text):
        separator, value = match.group(1), match.group(2)
        prose = separator.strip() == ":" and value.isalpha() and value.islower()  # "a password: something long"
        if not prose and not placeholder(value) and not _API_KEYS.fullmatch(value):
            yield Finding(PrivacyKind.PASSWORD, match.start(2), match.end(2))
    if "://" in text:
        for match in _CONNECTION.finditer(text):
            if not placeholder(match.group(1)):
                yield Finding(PrivacyKind.PASSWORD, match.start(1), match.end(1))
    for match in _PASSWORD_PROSE.finditer(text):
        group = 1 if match.group(1) is not None else 2
        value = match.group(group).rstrip(".!?")
        if not placeholder(value) and _looks_secret(value):
            yield Finding(PrivacyKind.PASSWORD, match.start(group), match.start(group) + len(value))


def _looks_secret(value: str) -> bool:
    """A word in prose is a password only if it has a digit or a symbol ("my password is wrong" has neither)."""
    return any(not char.isalpha() for char in value)
