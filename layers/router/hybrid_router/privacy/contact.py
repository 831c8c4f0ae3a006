"""E-mail addresses, phone numbers (Google's libphonenumber rules, through `phonenumbers`) and public IP addresses.

Not reported: addresses at the reserved example domains (RFC 2606: example.com, .test, .invalid, ...) and git's
`git@host` SSH addresses; digit runs after a cue such as "order", "invoice" or "ISBN"; IP addresses of private,
loopback, link-local, documentation or other reserved ranges, and dotted numbers after "version" or "v".
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator

from hybrid_router.privacy.kinds import Finding, PrivacyKind, before

_EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,24}(?![\w-])")
_RESERVED_DOMAINS = ("example.com", "example.org", "example.net", "example", "test", "invalid", "localhost", "local")
_NOT_PERSONAL_USERS = ("git",)

# Candidates: 7 to 17 digits, maybe a +country code and an (area code), split by single spaces, dots or dashes.
# libphonenumber then decides whether a candidate is a valid number for a region (far faster than its own matcher
# over the whole text); a long candidate that is not one number is searched with its matcher.
_PHONE_CANDIDATE = re.compile(
    r"(?<![\w+.-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?\d(?:[ .-]?\d){5,16}(?!\w|[.-]\d)"
)
_DOTTED_QUAD = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NUMBER_CUE = re.compile(
    r"\b(?:order|invoice|ticket|tracking|ref(?:erence)?|case|isbn|serial|account|acct|po|sku|part|build|"
    r"issue|pr|id|no\.?|number|#)\W*$"
)
PHONE_REGIONS = ("US", "GB")  # how a number without a +country code is read
MAX_MATCHER_RUNS = 16  # long digit runs searched with the (slow) matcher per text; a wall of digits is no chat

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:|:){2,8}[0-9A-Fa-f]{0,4}(?![\w:])")
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


def phone_regions(codes: Iterable[str]) -> tuple[str, ...]:
    """Region codes as libphonenumber knows them (ISO 3166 alpha-2, upper case); ValueError naming a bad one."""
    import phonenumbers

    regions = tuple(code.strip().upper() for code in codes if code.strip())
    unknown = [code for code in regions if code not in phonenumbers.SUPPORTED_REGIONS]
    if unknown or not regions:
        raise ValueError(
            f"phone regions must be ISO 3166 country codes libphonenumber knows (e.g. US, GB, DE), got {unknown or 'none'}"
        )
    return regions


def _valid_phone(candidate: str, regions: tuple[str, ...]) -> bool:
    import phonenumbers

    for region in (None,) if candidate.startswith("+") else regions:
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(candidate, region)):
                return True
        except phonenumbers.NumberParseException:
            continue
    return False


def _phones_within(candidate: str, regions: tuple[str, ...]) -> Iterator[tuple[int, int]]:
    """Several numbers in one candidate ("415 555 2671 212 555 0199"): libphonenumber's matcher finds them."""
    import phonenumbers

    seen: set[tuple[int, int]] = set()
    for region in regions:
        for match in phonenumbers.PhoneNumberMatcher(candidate, region, leniency=phonenumbers.Leniency.VALID):
            if (match.start, match.end) not in seen:
                seen.add((match.start, match.end))
                yield match.start, match.end


def phones(text: str, regions: tuple[str, ...] = PHONE_REGIONS) -> Iterator[Finding]:
    long_runs = 0
    for match in _PHONE_CANDIDATE.finditer(text):
        candidate = match.group()
        if _DOTTED_QUAD.fullmatch(candidate) or _ISO_DATE.fullmatch(candidate):
            continue
        if _NUMBER_CUE.search(before(text, match.start(), 24)):
            continue
        if _valid_phone(candidate, regions):
            yield Finding(PrivacyKind.PHONE, match.start(), match.end())
        elif sum(char.isdigit() for char in candidate) >= 14 and long_runs < MAX_MATCHER_RUNS:
            long_runs += 1
            for start, end in _phones_within(candidate, regions):
                yield Finding(PrivacyKind.PHONE, match.start() + start, match.start() + end)


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
