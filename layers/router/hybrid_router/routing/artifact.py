"""Reading a router file: the ONNX session, its metadata (ONNX metadata_props, JSON values) and its tokenizer."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The metadata key that marks an ONNX file as a hybrid-router router, and the format version it follows.
FORMAT_KEY = "hybrid_router_format"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("kind", "version", "router_id", "strong_model", "weak_model", "default_threshold", "calibration")

ROUTER_FILE = "router.onnx"
TOKENIZER_FILE = "tokenizer.json"


class RouterLoadError(ValueError):
    """The router file is missing, unreadable, or not a hybrid-router router."""


@dataclass(frozen=True)
class RouterInfo:
    router_id: str
    kind: str
    version: str
    strong_model: str
    weak_model: str
    models: list[str]
    default_threshold: float
    metadata: dict[str, Any] = field(repr=False)


def resolve_router_path(path: str | os.PathLike[str]) -> Path:
    """A router is named by its .onnx file or by the folder that holds router.onnx."""
    candidate = Path(path).expanduser()
    if candidate.is_dir():
        candidate = candidate / ROUTER_FILE
    if not candidate.is_file():
        raise RouterLoadError(f"router file not found: {candidate}")
    return candidate.resolve()


def read_metadata(custom_metadata_map: dict[str, str], source: Path) -> dict[str, Any]:
    """Decodes the JSON values of metadata_props and checks that this is one of our routers."""
    if FORMAT_KEY not in custom_metadata_map:
        raise RouterLoadError(f"{source} is an ONNX model but not a hybrid-router router (no '{FORMAT_KEY}' metadata)")
    metadata: dict[str, Any] = {}
    for key, raw in custom_metadata_map.items():
        try:
            metadata[key] = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise RouterLoadError(f"{source}: metadata '{key}' is not valid JSON ({exc})") from exc
    if metadata[FORMAT_KEY] != FORMAT_VERSION:
        raise RouterLoadError(
            f"{source}: router format {metadata[FORMAT_KEY]!r} is not supported (this runtime reads {FORMAT_VERSION})"
        )
    missing = [key for key in REQUIRED_KEYS if key not in metadata]
    if missing:
        raise RouterLoadError(f"{source}: router metadata lacks {', '.join(missing)}")
    quantiles = metadata["calibration"].get("quantiles") if isinstance(metadata["calibration"], dict) else None
    if not isinstance(quantiles, list) or len(quantiles) < 2:
        raise RouterLoadError(f"{source}: router metadata has no calibration quantiles")
    return metadata


def router_info(metadata: dict[str, Any]) -> RouterInfo:
    return RouterInfo(
        router_id=str(metadata["router_id"]),
        kind=str(metadata["kind"]),
        version=str(metadata["version"]),
        strong_model=str(metadata["strong_model"]),
        weak_model=str(metadata["weak_model"]),
        models=[str(m) for m in metadata.get("models", [metadata["strong_model"], metadata["weak_model"]])],
        default_threshold=float(metadata["default_threshold"]),
        metadata=metadata,
    )
