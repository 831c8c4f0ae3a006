"""The privacy step of a request's plan: what the detector found and what the `privacy` setting does about it.

A `PrivacyCheck` travels with the plan. It decides the route (`local`: the local model answers; `refuse`: nobody
does), gives the strong model the redacted conversation (`redact`), and gives the record the kinds, and a prompt
text without the values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hybrid_router.privacy.detector import Detection, Detector
from hybrid_router.privacy.kinds import PrivacyMode
from hybrid_router.privacy.redaction import Redaction


class PrivateDataKept(RuntimeError):
    """A private conversation was about to be sent off the device unredacted; it was stopped (a planning bug)."""

    def __init__(self, kinds: list[str]):
        super().__init__(f"a conversation with private data ({', '.join(kinds)}) was not sent to the strong model")


@dataclass(frozen=True)
class PrivacyCheck:
    """The detector's result for one conversation under one mode. `last_user`: the index of the message the router
    scores (the last user turn)."""

    mode: PrivacyMode
    detection: Detection
    texts: tuple[str, ...]
    last_user: int
    redaction: Redaction | None = None  # only for a private conversation the detector read without failing

    @classmethod
    def of(cls, texts: Sequence[str], last_user: int, mode: PrivacyMode, detector: Detector) -> PrivacyCheck:
        detection = detector.detect(texts)
        redaction = Redaction(texts, detection) if detection.private and not detection.failed else None
        return cls(mode, detection, tuple(texts), last_user, redaction)

    @property
    def private(self) -> bool:
        return self.detection.private

    @property
    def refuses(self) -> bool:
        return self.private and self.mode is PrivacyMode.REFUSE

    @property
    def redacts(self) -> bool:
        """The strong model may answer, from the redacted conversation."""
        return self.private and self.mode is PrivacyMode.REDACT and self.redaction is not None

    @property
    def keeps_local(self) -> bool:
        """Only the local model may answer: mode `local`, or `redact` when nothing could be redacted (the detector
        failed, so where the values are is unknown)."""
        return self.private and not self.refuses and not self.redacts

    @property
    def reason(self) -> str:
        return self.detection.reason

    @property
    def kinds(self) -> list[str]:
        """The kinds that triggered, by name, most severe first; empty for a conversation that is not private."""
        return self.detection.names() if self.private else []

    def safe_text(self) -> str | None:
        """The last user turn as it may leave the device or be kept in a record: as it is when not private,
        redacted when private, None when the detector failed (nothing can be redacted)."""
        if not self.private:
            return self.texts[self.last_user]
        return self.redaction.texts[self.last_user] if self.redaction is not None else None

    def outgoing(self, messages: list[dict]) -> list[dict]:
        """The messages for the strong model: as they are when not private, redacted when this check redacts.
        A private conversation this check does not redact never leaves (PrivateDataKept: fail closed)."""
        if not self.private:
            return messages
        if not self.redacts or self.redaction is None:
            raise PrivateDataKept(self.kinds)
        return [{**message, "content": text} for message, text in zip(messages, self.redaction.texts, strict=True)]

    def incoming(self, text: str) -> str:
        """The strong model's answer with the values put back (when this check redacts)."""
        return self.redaction.restore(text) if self.redacts and self.redaction is not None else text
