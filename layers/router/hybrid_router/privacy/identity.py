"""National identity numbers of a few common formats, each with its validity rule.

US Social Security number (SSA's allocation rules; without dashes only after a cue such as "SSN"), UK National
Insurance number (HMRC's prefixes), Spanish DNI and NIE (control letter), Canadian SIN (Luhn, after a cue), India's
Aadhaar (Verhoeff, written in groups of four).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from hybrid_router.privacy.checksums import dni_valid, luhn_valid, nino_valid, ssn_valid, verhoeff_valid
from hybrid_router.privacy.kinds import Finding, PrivacyKind, before

_SSN = re.compile(r"(?<![\w-])(\d{3})([- ]?)(\d{2})\2(\d{4})(?![\w-])")
_SSN_CUE = re.compile(r"\b(?:ssn|social security|soc\.? sec\.?|ss#)")
_NINO = re.compile(r"(?<!\w)([A-Za-z]{2}) ?(\d{2}) ?(\d{2}) ?(\d{2}) ?([A-Da-d])(?!\w)")
_NINO_CUE = re.compile(r"\b(?:ni|nino|national insurance)\b")
_DNI = re.compile(r"(?<![\w-])([XYZ]?\d{7,8})-?([A-Za-z])(?!\w)")
_SIN = re.compile(r"(?<![\w-])(\d{3})([- ]?)(\d{3})\2(\d{3})(?![\w-])")
_SIN_CUE = re.compile(r"\b(?:sin|social insurance)\b")
_AADHAAR = re.compile(r"(?<![\w-])([2-9]\d{3}) (\d{4}) (\d{4})(?![\w-])")


def _found(match: re.Match[str]) -> Finding:
    return Finding(PrivacyKind.NATIONAL_ID, match.start(), match.end())


def us_ssn(text: str) -> Iterator[Finding]:
    for match in _SSN.finditer(text):
        area, separator, group, serial = match.groups()
        if not ssn_valid(area, group, serial):
            continue
        if separator or _SSN_CUE.search(before(text, match.start())):
            yield _found(match)


def uk_nino(text: str) -> Iterator[Finding]:
    for match in _NINO.finditer(text):
        prefix = match.group(1)
        lower = prefix.islower() or match.group(5).islower()
        if not nino_valid(prefix):
            continue
        if not lower or _NINO_CUE.search(before(text, match.start())):  # "ab 12 34 56 c" only after a cue
            yield _found(match)


def spanish_dni(text: str) -> Iterator[Finding]:
    for match in _DNI.finditer(text):
        number, letter = match.groups()
        if len(number) == 8 and dni_valid(number, letter):
            yield _found(match)


def canadian_sin(text: str) -> Iterator[Finding]:
    for match in _SIN.finditer(text):
        digits = "".join(match.group(1, 3, 4))
        if digits[0] not in "08" and luhn_valid(digits) and _SIN_CUE.search(before(text, match.start())):
            yield _found(match)


def aadhaar(text: str) -> Iterator[Finding]:
    for match in _AADHAAR.finditer(text):
        if verhoeff_valid("".join(match.groups())):
            yield _found(match)


def national_ids(text: str) -> Iterator[Finding]:
    for recognizer in (us_ssn, uk_nino, spanish_dni, canadian_sin, aadhaar):
        yield from recognizer(text)
