"""`hybrid-router doctor`: one line per check, the local model decoded in a child process, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("llama_cpp")


def doctor(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HYBRID_ROUTER_")}
    environment.update(
        {
            "HYBRID_ROUTER_CONFIG": str(tmp_path / "absent.toml"),
            "HYBRID_ROUTER_DATA_DIR": str(tmp_path / "data"),
            "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "COLUMNS": "200",
            **env,
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "edge_client.cli", "doctor"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=180,
    )


def test_a_working_device_passes_every_check(tmp_path: Path) -> None:
    done = doctor(tmp_path)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    names = [line.split(":")[0].split(maxsplit=1)[1] for line in lines]
    assert names == [
        "platform",
        "llama-cpp-python",
        "local model decodes",
        "router",
        "quality target",
        "data folder",
        "cloud",
    ]
    assert lines[2].startswith("ok") and "child process" in lines[2]
    # the shipped operating point: SmolLM2 meets the packaged target nowhere, and the user is told so
    assert lines[4].startswith("warn") and "quality target 90% at 95% confidence" in lines[4]
    assert "every prompt goes to the strong model" in lines[4] and "757 labelled rows" in lines[4]
    assert lines[-1].startswith("warn") and "no cloud_url" in lines[-1]


def test_a_model_that_cannot_decode_fails_its_check_clearly(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 4096)
    done = doctor(tmp_path, HYBRID_ROUTER_LOCAL_MODEL_PATH=str(broken), HYBRID_ROUTER_CLOUD_URL="http://127.0.0.1:9")
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    failed = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and "broken.gguf" in failed[0]
    assert any(line.startswith("warn cloud") and "unreachable" in line for line in done.stdout.splitlines())
