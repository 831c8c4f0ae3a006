"""AWS event-stream binary framing (application/vnd.amazon.eventstream), the encoder side.

One message: prelude (total length u32, headers length u32, CRC32 of those 8 bytes), headers, payload,
CRC32 of everything before it. botocore's EventStream parser decodes what this writes, unchanged.
"""

from __future__ import annotations

import json
import struct
import zlib

CONTENT_TYPE = "application/vnd.amazon.eventstream"
_STRING_HEADER = 7


def _encode_headers(headers: dict[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        name_bytes = name.encode("utf-8")
        value_bytes = value.encode("utf-8")
        out += struct.pack(">B", len(name_bytes)) + name_bytes
        out += struct.pack(">BH", _STRING_HEADER, len(value_bytes)) + value_bytes
    return bytes(out)


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    header_bytes = _encode_headers(headers)
    total_length = 12 + len(header_bytes) + len(payload) + 4
    prelude = struct.pack(">II", total_length, len(header_bytes))
    prelude += struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + header_bytes + payload
    return message + struct.pack(">I", zlib.crc32(message) & 0xFFFFFFFF)


def payload_part(data: bytes) -> bytes:
    """A SageMaker runtime `PayloadPart` event carrying raw bytes from the model container."""
    return encode_message(
        {":event-type": "PayloadPart", ":content-type": "application/octet-stream", ":message-type": "event"},
        data,
    )


def exception_event(error_type: str, message: str, error_code: str | None = None) -> bytes:
    """A modeled in-stream error (e.g. ModelStreamError, InternalStreamFailure); botocore raises EventStreamError."""
    body: dict[str, str] = {"Message": message}
    if error_code:
        body["ErrorCode"] = error_code
    return encode_message(
        {":exception-type": error_type, ":content-type": "application/json", ":message-type": "exception"},
        json.dumps(body).encode("utf-8"),
    )
