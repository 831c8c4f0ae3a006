"""What the privacy detector can find: kinds of personal data and secrets, and the set that triggers by default."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum


class PrivacyKind(StrEnum):
    """A kind of personal data or secret. Declared in order of severity: a prompt with several kinds is reported
    (in its reason, `privacy:<kind>`) by the first of them."""

    DETECTOR_ERROR = "detector_error"  # the detector failed: the prompt is treated as private (fail closed)
    PRIVATE_KEY = "private_key"
    API_KEY = "api_key"
    TOKEN = "token"  # JWTs and bearer tokens
    PASSWORD = "password"  # in config-like text or a connection string
    PAYMENT_CARD = "payment_card"
    IBAN = "iban"
    NATIONAL_ID = "national_id"
    EMAIL = "email"
    PHONE = "phone"
    IP_ADDRESS = "ip_address"
    STREET_ADDRESS = "street_address"
    PERSON_NAME = "person_name"


class PrivacyMode(StrEnum):
    """What the device does with a prompt that carries a triggering kind."""

    LOCAL = "local"  # the local model answers (reason privacy:<kind>)
    REDACT = "redact"  # placeholders go to the strong model; the device puts the values back into its answer
    REFUSE = "refuse"  # no model answers
    OFF = "off"  # no detection


# Every kind the detector finds triggers by default: its recognizers only report names and street addresses in a
# private context ("my wife Anna", "I live at ...", a letter's greeting), public IP addresses (not private,
# loopback or documentation ranges) and e-mail addresses outside the reserved example domains, so a question about
# a public figure or a place is not private.
DEFAULT_TRIGGERS: frozenset[PrivacyKind] = frozenset(PrivacyKind)


def parse_kinds(names: Iterable[str]) -> frozenset[PrivacyKind]:
    """Kinds by name (ValueError naming the valid ones for an unknown name). `detector_error` always triggers."""
    kinds = set()
    for name in names:
        try:
            kinds.add(PrivacyKind(name.strip().lower()))
        except ValueError:
            valid = ", ".join(kind.value for kind in PrivacyKind)
            raise ValueError(f"unknown privacy kind {name!r}; valid kinds: {valid}") from None
    return frozenset(kinds | {PrivacyKind.DETECTOR_ERROR})


def first_kind(kinds: Iterable[PrivacyKind]) -> PrivacyKind:
    """The most severe of `kinds` (the order of PrivacyKind)."""
    order = list(PrivacyKind)
    return min(kinds, key=order.index)


@dataclass(frozen=True, slots=True)
class Finding:
    """Where a recognizer found a kind in one text: offsets only, never the value."""

    kind: PrivacyKind
    start: int
    end: int


Recognizer = Callable[[str], Iterator[Finding]]


def before(text: str, start: int, width: int = 40) -> str:
    """The lower-cased `width` characters before `start`: the context recognizers read cues from."""
    return text[max(start - width, 0) : start].lower()
