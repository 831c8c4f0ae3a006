"""ULIDs: 48-bit millisecond time + 80 random bits, Crockford base32, 26 characters.

Made where a decision is made, so re-sending a record is idempotent and ids sort by time.
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PATTERN = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$"  # is_ulid as a regular expression (for schemas)


def new_ulid(timestamp_ms: int | None = None) -> str:
    ms = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def is_ulid(text: str) -> bool:
    return len(text) == 26 and all(c in _ALPHABET for c in text) and text[0] <= "7"


def ulid_time_ms(ulid: str) -> int:
    value = 0
    for c in ulid[:10]:
        value = value * 32 + _ALPHABET.index(c)
    return value
