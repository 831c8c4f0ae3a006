"""The detector: runs every recognizer over each message of a conversation and names the kinds found.

It fails closed: a recognizer that raises makes the whole result `detector_error`, a kind that always triggers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial

from hybrid_router.privacy import contact, credentials, financial, identity, personal
from hybrid_router.privacy.kinds import DEFAULT_TRIGGERS, Finding, PrivacyKind, Recognizer, first_kind

log = logging.getLogger("hybrid_router.privacy")

RECOGNIZERS: tuple[Recognizer, ...] = (
    credentials.private_keys,
    credentials.api_keys,
    credentials.tokens,
    credentials.passwords,
    financial.payment_cards,
    financial.ibans,
    identity.national_ids,
    contact.emails,
    contact.phones,
    contact.ip_addresses,
    personal.street_addresses,
    personal.person_names,
)


def recognizers_for(phone_regions: Sequence[str]) -> tuple[Recognizer, ...]:
    """The recognizers, reading a phone number written without a +country code as one of `phone_regions`'."""
    regions = contact.phone_regions(phone_regions)
    phones: Recognizer = partial(contact.phones, regions=regions)
    return tuple(phones if recognizer is contact.phones else recognizer for recognizer in RECOGNIZERS)


@dataclass(frozen=True)
class Located:
    """A finding in message `message` of the conversation."""

    message: int
    finding: Finding


@dataclass(frozen=True)
class Detection:
    """What the detector found in a conversation: the kinds (never the values), and where (for redaction).
    `kinds` holds only the kinds that trigger; `found` holds every one found."""

    kinds: frozenset[PrivacyKind]
    found: frozenset[PrivacyKind]
    locations: tuple[Located, ...] = ()

    @property
    def private(self) -> bool:
        return bool(self.kinds)

    @property
    def failed(self) -> bool:
        return PrivacyKind.DETECTOR_ERROR in self.found

    @property
    def reason(self) -> str:
        """`privacy:<kind>` of the most severe kind that triggered (only for a private result)."""
        return f"privacy:{first_kind(self.kinds).value}"

    def names(self) -> list[str]:
        """The triggering kinds' names, most severe first (what a record keeps)."""
        order = list(PrivacyKind)
        return [kind.value for kind in sorted(self.kinds, key=order.index)]


FAILED = Detection(
    frozenset({PrivacyKind.DETECTOR_ERROR}), frozenset({PrivacyKind.DETECTOR_ERROR})
)  # fail closed: no locations, so nothing can be redacted either


def _without_overlaps(findings: Iterable[Finding]) -> list[Finding]:
    """Findings that do not overlap an earlier (more severe, then longer) one, in text order."""
    order = list(PrivacyKind)
    kept: list[Finding] = []
    for finding in sorted(findings, key=lambda f: (order.index(f.kind), f.start - f.end)):
        if all(finding.end <= other.start or finding.start >= other.end for other in kept):
            kept.append(finding)
    return sorted(kept, key=lambda f: f.start)


class Detector:
    """Detects personal data and secrets. `triggers`: the kinds that make a prompt private (detector_error always
    does); `recognizers`: the functions that find them (each text -> findings)."""

    def __init__(
        self,
        triggers: Iterable[PrivacyKind] = DEFAULT_TRIGGERS,
        recognizers: Sequence[Recognizer] = RECOGNIZERS,
    ):
        self.triggers = frozenset(triggers) | {PrivacyKind.DETECTOR_ERROR}
        self.recognizers = tuple(recognizers)

    def scan(self, text: str) -> list[Finding]:
        """Every finding in one text, overlaps resolved (raises what a recognizer raises)."""
        return _without_overlaps(finding for recognizer in self.recognizers for finding in recognizer(text))

    def detect(self, texts: Sequence[str]) -> Detection:
        """The kinds in a conversation's texts (one per message). Never raises: a failure is `detector_error`."""
        try:
            located = tuple(Located(index, f) for index, text in enumerate(texts) for f in self.scan(text))
        except Exception:  # fail closed, whatever went wrong
            log.exception("the privacy detector failed; the prompt is treated as private")
            return FAILED
        found = frozenset(item.finding.kind for item in located)
        triggering = tuple(item for item in located if item.finding.kind in self.triggers)
        return Detection(found & self.triggers, found, triggering)


_default: Detector | None = None


def detect(texts: Sequence[str]) -> Detection:
    """The default detector (DEFAULT_TRIGGERS) over a conversation's texts."""
    global _default
    if _default is None:
        _default = Detector()
    return _default.detect(texts)
