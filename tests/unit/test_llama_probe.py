"""The decode probe: a llama.cpp build that crashes is reported with the flags to rebuild with, never suffered."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hybrid_router.backends.base import BackendError
from hybrid_router.backends.llama_cpp import LlamaCppBackend, ensure_decodes
from hybrid_router.backends.llama_probe import describe_exit, probe, shipped_gguf

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "scripts" / "build_llama_wheel.sh"


def _crashing_python(tmp_path: Path, signal_name: str) -> str:
    """An interpreter stand-in that dies of a signal, as a wrongly built llama.cpp does on its first decode."""
    script = tmp_path / f"python-{signal_name}"
    script.write_text(f"#!/bin/sh\nkill -{signal_name} $$\n")
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize("signal_name", ["SEGV", "ILL"])
def test_a_crash_in_the_child_is_named_with_the_flags_to_rebuild_with(tmp_path: Path, signal_name: str) -> None:
    result = probe(shipped_gguf(), python=_crashing_python(tmp_path, signal_name))
    assert not result.ok
    assert f"crashed with SIG{signal_name}" in result.detail
    assert "-DGGML_NATIVE=OFF" in result.detail and "build_llama_wheel.sh" in result.detail


def test_exit_codes_are_described() -> None:
    assert describe_exit(-11) == "crashed with SIGSEGV"
    assert describe_exit(3) == "exited with status 3"


def test_the_installed_build_decodes_the_shipped_model() -> None:
    result = probe(shipped_gguf())
    assert result.ok, result.detail
    assert '"tokens"' in result.detail and "system_info" in result.detail


def test_a_file_that_is_no_model_fails_the_probe_and_the_backend_names_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(4096))
    with pytest.raises(BackendError) as info:
        ensure_decodes(bad)
    assert info.value.cause == "local_model_error" and "cannot run" in str(info.value)
    with pytest.raises(BackendError) as info:
        LlamaCppBackend(bad).complete([{"role": "user", "content": "hi"}], max_tokens=2)
    assert info.value.cause == "local_model_error"


def test_a_proven_build_is_remembered(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    ensure_decodes(shipped_gguf())
    cache = tmp_path / "cache" / "hybrid-router" / "llama-proven.json"
    assert cache.is_file() and str(shipped_gguf().resolve()) in cache.read_text()


def _cache_dir(flags: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "CMAKE_ARGS"}
    if flags is not None:
        env["CMAKE_ARGS"] = flags
    env["HYBRID_ROUTER_WHEELS"] = "/nonexistent/wheels"
    done = subprocess.run(
        ["bash", str(BUILD_SCRIPT), sys.executable, "--print-cache-dir"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_the_wheel_cache_is_keyed_by_the_build_flags() -> None:
    portable = _cache_dir(None)
    assert portable.startswith("/nonexistent/wheels/llama-cpp-python-")
    assert _cache_dir(None) == portable
    assert _cache_dir("-DGGML_NATIVE=ON") != portable
    assert _cache_dir("-DGGML_NATIVE=OFF -DGGML_AVX2=OFF") not in (portable, _cache_dir("-DGGML_NATIVE=ON"))
