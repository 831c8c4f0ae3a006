"""E-mail addresses, phone numbers (Google's libphonenumber rules, through `phonenumbers`) and public IP addresses.

Not reported: addresses at the reserved example domains (RFC 2606: example.com, .test, .invalid, ...) and git's
`git@host` SSH addresses; digit runs after a cue such as "order", "invoice" or "ISBN"; IP addresses of private,
loopback, link-local, documentation or other reserved ranges, and dotted numbers after "version" or "v".
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

from hybrid_router.privacy.kinds import Finding, PrivacyKind, before

_EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,24}(?![\w-])")
_RESERVED_DOMAINS = ("example.com", "example.org", "example.net", "example", "test", "invalid", "localhost", "local")
_NOT_PERSONAL_USERS = ("git",)

# A phone number has at least 7 digits; text without such a run is not given to libphonenumber (it is slower).
_DIGIT_RUN = re.compile(r"\d(?:[\s().-]{0,2}\d){6,}")
_NUMBER_CUE = re.compile(
    r"\b(?:order|invoice|ticket|tracking|ref(?:erence)?|case|isbn|serial|account|acct|po|sku|part|build|"
    r"issue|pr|id|no\.?|number|#)\W*$"
)
PHONE_REGIONS = ("US", "GB")  # how a number without a +country code is read

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_VERSION_CUE = re.compile(r"(?:\bv|version|release|ver\.?|build)\s*$")


def _reserved(domain: str) -> bool:
    domain = domain.lower()
    return any(domain == name or domain.endswith("." + name) for name in _RESERVED_DOMAINS)


def emails(text: str) -> Iterator[Finding]:
    if "@" not in text:
        return
    for match in _EMAIL.finditer(text):
        user, _, domain = match.group().partition("@")
        if not _reserved(domain) and user.lower() not in _NOT_PERSONAL_USERS:
            yield Finding(PrivacyKind.EMAIL, match.start(), match.end())


def phones(text: str, regions: tuple[str, ...] = PHONE_REGIONS) -> Iterator[Finding]:
    if not _DIGIT_RUN.search(text):
        return
    import phonenumbers

    seen: set[tuple[int, int]] = set()
    for region in regions:
        for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
            span = (match.start, match.end)
            if span in seen or _NUMBER_CUE.search(before(text, match.start, 24)):
                continue
            seen.add(span)
            yield Finding(PrivacyKind.PHONE, match.start, match.end)


def _public(candidate: str) -> bool:
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return address.is_global and not address.is_multicast


def ip_addresses(text: str) -> Iterator[Finding]:
    if "." in text:
        for match in _IPV4.finditer(text):
            if _public(match.group()) and not _VERSION_CUE.search(before(text, match.start(), 12)):
                yield Finding(PrivacyKind.IP_ADDRESS, match.start(), match.end())
    if "::" in text or text.count(":") >= 7:
        for match in _IPV6.finditer(text):
            candidate = match.group()
            if ("::" in candidate or candidate.count(":") == 7) and _public(candidate):
                yield Finding(PrivacyKind.IP_ADDRESS, match.start(), match.end())
