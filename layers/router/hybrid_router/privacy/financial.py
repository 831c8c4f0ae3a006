"""Payment card numbers (issuer prefix + Luhn) and IBANs (country length + mod-97)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from hybrid_router.privacy.checksums import card_valid, iban_valid
from hybrid_router.privacy.kinds import Finding, PrivacyKind

# 12-19 digits, optionally in groups split by one space or dash (4-4-4-4, 4-6-5, ...).
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){11,18}(?![\w-])")
# Two letters, two check digits, then 11-30 letters or digits, optionally in groups of four split by a space.
_IBAN = re.compile(r"(?<![\w])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{4}){2,7}(?: ?[A-Za-z0-9]{1,4})?(?!\w)")


def _digits(text: str) -> str:
    return "".join(char for char in text if char.isdigit())


def payment_cards(text: str) -> Iterator[Finding]:
    for match in _CARD.finditer(text):
        raw = match.group()
        separators = set(raw) - set("0123456789")
        if len(separators) > 1:  # "1234-5678 9012 3456": not how anyone writes a card
            continue
        if card_valid(_digits(raw)):
            yield Finding(PrivacyKind.PAYMENT_CARD, match.start(), match.end())


def ibans(text: str) -> Iterator[Finding]:
    for match in _IBAN.finditer(text):
        compact = match.group().replace(" ", "").upper()
        if iban_valid(compact):
            yield Finding(PrivacyKind.IBAN, match.start(), match.end())
