"""The stand-in's event-stream encoder against botocore's own parser, and the SageMaker stream line decoder."""

from __future__ import annotations

import json

import botocore.session
import pytest
from botocore.eventstream import ChecksumMismatch, EventStream, EventStreamBuffer
from botocore.exceptions import EventStreamError
from botocore.parsers import EventStreamJSONParser

from hybrid_router.backends.base import BackendError
from hybrid_router.backends.sagemaker import StreamLineDecoder, build_request_body, parse_response_body
from local_stack.eventstream import encode_message, exception_event, payload_part


class _RawStream:
    """What botocore's EventStream reads from: an object with .stream() yielding byte chunks."""

    def __init__(self, data: bytes, chunk_size: int):
        self.chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]

    def stream(self):
        yield from self.chunks

    def close(self):
        pass


def _sagemaker_event_stream(data: bytes, chunk_size: int) -> EventStream:
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    operation = model.operation_model("InvokeEndpointWithResponseStream")
    body_shape = operation.output_shape.members["Body"]
    return EventStream(_RawStream(data, chunk_size), body_shape, EventStreamJSONParser(), operation.name)


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 10_000])
def test_payload_parts_decode_through_botocore_unchanged(chunk_size):
    parts = [b'data:{"token": {"text": "Hel"}}\n', "lo wörld ✓".encode(), b"", b"x" * 3000]
    wire = b"".join(payload_part(p) for p in parts)
    events = list(_sagemaker_event_stream(wire, chunk_size))
    assert [e["PayloadPart"]["Bytes"] for e in events] == parts


def test_model_stream_error_event_raises_botocore_event_stream_error():
    wire = payload_part(b"partial") + exception_event("ModelStreamError", "container died", "ModelStreamError")
    stream = iter(_sagemaker_event_stream(wire, 16))
    assert next(stream)["PayloadPart"]["Bytes"] == b"partial"
    with pytest.raises(EventStreamError) as raised:
        next(stream)
    assert raised.value.response["Error"]["Code"] == "ModelStreamError"
    assert "container died" in raised.value.response["Error"]["Message"]


def test_corrupted_message_fails_botocore_checksum():
    wire = bytearray(encode_message({":event-type": "PayloadPart", ":message-type": "event"}, b"abc"))
    wire[-6] ^= 0xFF  # flip a payload byte: the message CRC no longer matches
    buffer = EventStreamBuffer()
    buffer.add_data(bytes(wire))
    with pytest.raises(ChecksumMismatch):
        list(buffer)


def _decode(chunks: list[bytes], stops=()) -> tuple[str, StreamLineDecoder]:
    decoder = StreamLineDecoder(stops)
    out = [piece for chunk in chunks for piece in decoder.feed(chunk)]
    out += list(decoder.close())
    return "".join(out), decoder


def test_tgi_token_lines_split_anywhere():
    lines = b"".join(
        b"data:" + json.dumps({"token": {"id": i, "text": t, "special": False}, "details": None}).encode() + b"\n\n"
        for i, t in enumerate(["Hello", ",", " world"])
    )
    lines += (
        b"data:"
        + json.dumps(
            {
                "token": {"id": 9, "text": "</s>", "special": True},
                "generated_text": "Hello, world",
                "details": {"finish_reason": "length", "generated_tokens": 4},
            }
        ).encode()
        + b"\n"
    )
    text, decoder = _decode([lines[i : i + 5] for i in range(0, len(lines), 5)])
    assert text == "Hello, world"
    assert decoder.finish_reason == "length"
    assert decoder.completion_tokens == 4


def test_openai_chunks_with_usage_and_done():
    events = [
        {"choices": [{"delta": {"role": "assistant", "content": ""}}]},
        {"choices": [{"delta": {"content": "4"}, "finish_reason": None}]},
        {"choices": [{"delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 1}},
    ]
    wire = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    text, decoder = _decode([wire[:17], wire[17:]])
    assert text == "4"
    assert (decoder.prompt_tokens, decoder.completion_tokens, decoder.finish_reason) == (12, 1, "stop")


def test_stop_string_split_across_tokens_is_cut():
    tokens = ["The answer", " is 4.<|im", "_end|>", "garbage"]
    wire = b"".join(b"data:" + json.dumps({"token": {"text": t}}).encode() + b"\n" for t in tokens)
    text, _ = _decode([wire], stops=["<|im_end|>"])
    assert text == "The answer is 4."


def test_error_line_mid_stream_is_stream_broken():
    wire = b'data:{"token": {"text": "a"}}\ndata:{"error": "CUDA out of memory", "error_type": "generation"}\n'
    with pytest.raises(BackendError) as raised:
        _decode([wire])
    assert raised.value.cause == "strong_stream_broken"
    assert "CUDA out of memory" in str(raised.value)


def test_parse_tgi_and_openai_bodies():
    tgi = [
        {
            "generated_text": "Paris<|im_end|>",
            "details": {
                "finish_reason": "stop_sequence",
                "generated_tokens": 2,
                "prefill": [{"id": 1}, {"id": 2}, {"id": 3}],
            },
        }
    ]
    assert parse_response_body(json.dumps(tgi).encode(), ["<|im_end|>"]) == ("Paris", "stop", 3, 2)
    openai = {
        "choices": [{"message": {"content": "hi"}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1},
    }
    assert parse_response_body(json.dumps(openai).encode()) == ("hi", "length", 5, 1)
    with pytest.raises(BackendError):
        parse_response_body(b"<html>oops</html>")


def test_request_bodies():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    tgi = build_request_body(messages, "tgi", 8, 0.0, stream=True)
    assert tgi["inputs"].endswith("<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n")
    assert tgi["parameters"]["max_new_tokens"] == 8 and tgi["parameters"]["do_sample"] is False
    assert "temperature" not in tgi["parameters"] and tgi["stream"] is True
    chat = build_request_body(messages, "messages", 8, 0.5, stream=False)
    assert chat["messages"] == messages and chat["max_tokens"] == 8 and chat["stream"] is False
