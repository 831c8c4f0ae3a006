"""Redaction: each private value in a conversation becomes a placeholder such as `[EMAIL_1]` (the same value, the
same placeholder), and the placeholders in an answer are put back on the device, also across streamed pieces."""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator, Sequence
from typing import TypeVar

from hybrid_router.privacy.detector import Detection

_PLACEHOLDER = re.compile(r"\[[A-Z_]+_\d+\]")
_PARTIAL = re.compile(r"\[[A-Z_0-9]*$")  # what a placeholder cut at the end of a streamed piece looks like

R = TypeVar("R")


class Redaction:
    """The texts of a conversation with their private values replaced, and the way back."""

    def __init__(self, texts: Sequence[str], detection: Detection):
        by_message: dict[int, list] = {}
        for item in detection.locations:
            by_message.setdefault(item.message, []).append(item.finding)
        self.values: dict[str, str] = {}  # placeholder -> value
        placeholders: dict[tuple[str, str], str] = {}  # (kind, value) -> placeholder
        counts: dict[str, int] = {}
        redacted = []
        for index, text in enumerate(texts):
            parts, end = [], 0
            for finding in sorted(by_message.get(index, []), key=lambda f: f.start):
                value = text[finding.start : finding.end]
                key = (finding.kind.value, value)
                if key not in placeholders:
                    counts[finding.kind.value] = counts.get(finding.kind.value, 0) + 1
                    placeholders[key] = f"[{finding.kind.value.upper()}_{counts[finding.kind.value]}]"
                    self.values[placeholders[key]] = value
                parts += [text[end : finding.start], placeholders[key]]
                end = finding.end
            redacted.append("".join(parts) + text[end:])
        self.texts: list[str] = redacted

    def restore(self, text: str) -> str:
        """`text` with every placeholder of this conversation replaced by its value (others are left as they are)."""
        return _PLACEHOLDER.sub(lambda m: self.values.get(m.group(), m.group()), text)

    def restore_stream(self, pieces: Iterator[str]) -> Generator[str, None, R]:
        """The pieces of a streamed answer with placeholders restored; a placeholder split across pieces is held
        back until it is whole. Returns what `pieces` returns (a stream's usage)."""
        held = ""
        try:
            while True:
                try:
                    piece = next(pieces)
                except StopIteration as stop:
                    if held:
                        yield self.restore(held)
                    return stop.value
                held += piece
                partial = _PARTIAL.search(held)
                ready, held = (held[: partial.start()], held[partial.start() :]) if partial else (held, "")
                if ready:
                    yield self.restore(ready)
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()
