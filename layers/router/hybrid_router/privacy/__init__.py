"""Privacy on the device: find personal data and secrets in a conversation before it is routed.

`detect(texts)` names the kinds found (PrivacyKind), never the values; `Redaction` swaps the values for
placeholders and puts them back into an answer. What a private prompt does (answered locally, redacted, refused)
is the device's `privacy` setting (PrivacyMode).
"""

from hybrid_router.privacy.detector import Detection, Detector, detect
from hybrid_router.privacy.kinds import DEFAULT_TRIGGERS, Finding, PrivacyKind, PrivacyMode, parse_kinds
from hybrid_router.privacy.redaction import Redaction
from hybrid_router.privacy.screen import PrivacyCheck

__all__ = [
    "DEFAULT_TRIGGERS",
    "Detection",
    "Detector",
    "Finding",
    "PrivacyCheck",
    "PrivacyKind",
    "PrivacyMode",
    "Redaction",
    "detect",
    "parse_kinds",
]
