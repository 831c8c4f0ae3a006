"""Edge settings: precedence (default < file < env < option), sources, secret masking, clear errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edge_client.config import ConfigError, describe, load_settings, mask_secret

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_when_nothing_is_set(tmp_path: Path) -> None:
    loaded = load_settings(
        env={"HYBRID_ROUTER_STACK_FILE": str(tmp_path / "no-stack.json")}, config_path=tmp_path / "absent.toml"
    )
    assert loaded.settings.routing_mode == "local"
    assert loaded.settings.store_prompts is False
    assert loaded.settings.max_tokens == 256
    assert set(loaded.sources.values()) == {"default"}


def test_file_then_env_then_option(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", 'n_threads = 2\nmax_tokens = 64\ndaily_cap_usd = 1.5\ncloud_url = "http://x"\n')
    env = {"HYBRID_ROUTER_MAX_TOKENS": "32", "HYBRID_ROUTER_STORE_PROMPTS": "true"}
    loaded = load_settings(env=env, config_path=config, daily_cap_usd=0.25)
    s = loaded.settings
    assert (s.n_threads, s.max_tokens, s.daily_cap_usd, s.store_prompts) == (2, 32, 0.25, True)
    assert loaded.sources["n_threads"] == f"file:{config}"
    assert loaded.sources["max_tokens"] == "env:HYBRID_ROUTER_MAX_TOKENS"
    assert loaded.sources["store_prompts"] == "env:HYBRID_ROUTER_STORE_PROMPTS"
    assert loaded.sources["daily_cap_usd"] == "option"
    assert loaded.sources["n_ctx"] == "default"


def test_config_path_from_environment(tmp_path: Path) -> None:
    config = write(tmp_path / "elsewhere.toml", 'device_id = "laptop-7"\n')
    loaded = load_settings(env={"HYBRID_ROUTER_CONFIG": str(config)})
    assert loaded.config_path == config
    assert loaded.settings.device_id == "laptop-7"


def test_router_runtime_variable_is_honoured_as_router_path(tmp_path: Path) -> None:
    loaded = load_settings(env={"HYBRID_ROUTER_ROUTER": "/opt/r"}, config_path=tmp_path / "none.toml")
    assert loaded.settings.router_path == "/opt/r"
    assert loaded.sources["router_path"] == "env:HYBRID_ROUTER_ROUTER"
    both = load_settings(
        env={"HYBRID_ROUTER_ROUTER": "/opt/r", "HYBRID_ROUTER_ROUTER_PATH": "/opt/s"},
        config_path=tmp_path / "none.toml",
    )
    assert both.settings.router_path == "/opt/s"


@pytest.mark.parametrize(
    ("text", "env", "needle"),
    [
        ("colour = 1\n", {}, "unknown setting(s) colour"),
        ("n_ctx = [\n", {}, "cannot read settings file"),
        ("", {"HYBRID_ROUTER_N_THREADS": "many"}, "n_threads (env:HYBRID_ROUTER_N_THREADS)"),
        ('routing_mode = "sideways"\n', {}, "routing_mode (file:"),
        ("threshold = 0.3\nstrong_share = 0.2\n", {}, "threshold or strong_share"),
        ("quality_target = 0.9\nthreshold = 0.3\n", {}, "quality_target or an expert threshold/strong_share"),
        ("", {"HYBRID_ROUTER_QUALITY_TARGET": "1.5"}, "quality_target (env:HYBRID_ROUTER_QUALITY_TARGET)"),
        ("", {"HYBRID_ROUTER_CLOUD_URL": "api.example.com"}, "cloud_url (env:HYBRID_ROUTER_CLOUD_URL)"),
    ],
)
def test_bad_settings_name_the_culprit(tmp_path: Path, text: str, env: dict, needle: str) -> None:
    config = write(tmp_path / "c.toml", text)
    with pytest.raises(ConfigError) as info:
        load_settings(env=env, config_path=config)
    assert needle in str(info.value)


def test_secrets_are_masked(tmp_path: Path) -> None:
    secret = "sk-live-0123456789abcdefWXYZ"
    config = write(tmp_path / "c.toml", f'api_key = "{secret}"\n')
    loaded = load_settings(env={"HYBRID_ROUTER_OPENAI_API_KEY": "short"}, config_path=config)
    values = {name: value for name, value, _ in describe(loaded)}
    assert values["api_key"] == "****WXYZ"
    assert values["openai_api_key"] == "****"
    assert secret not in json.dumps(values)
    assert mask_secret(None) is None


def test_config_command_prints_sources_and_never_the_secret(tmp_path: Path) -> None:
    secret = "key-9f8e7d6c5b4a39281706"
    config = write(tmp_path / "c.toml", f'api_key = "{secret}"\nn_ctx = 1024\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRID_ROUTER_")}
    env.update(HYBRID_ROUTER_CONFIG=str(config), HYBRID_ROUTER_TENANT_ID="acme", HYBRID_ROUTER_DATA_DIR=str(tmp_path))
    plain = subprocess.run(
        [sys.executable, "-m", "edge_client.cli", "config"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert plain.returncode == 0, plain.stderr
    assert secret not in plain.stdout and "****" in plain.stdout
    as_json = subprocess.run(
        [sys.executable, "-m", "edge_client.cli", "config", "--json"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    data = json.loads(as_json.stdout)["settings"]
    assert data["n_ctx"] == {"value": 1024, "source": f"file:{config}"}
    assert data["tenant_id"] == {"value": "acme", "source": "env:HYBRID_ROUTER_TENANT_ID"}
    assert data["api_key"]["value"] == "****" + secret[-4:]
    assert data["max_tokens"]["source"] == "default"


def test_invalid_settings_exit_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRID_ROUTER_")}
    env.update(HYBRID_ROUTER_CONFIG=str(tmp_path / "none.toml"), HYBRID_ROUTER_N_CTX="lots")
    result = subprocess.run(
        [sys.executable, "-m", "edge_client.cli", "config"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error: invalid settings: n_ctx (env:HYBRID_ROUTER_N_CTX)")


def _stack_file(tmp_path: Path, pid: int) -> Path:
    path = tmp_path / "local_stack.json"
    path.write_text(
        json.dumps(
            {
                "api_url": "http://127.0.0.1:4567",
                "api_key": "stack-key",
                "tenant": "local",
                "device": "laptop",
                "pid": pid,
            }
        )
    )
    return path


def test_a_running_local_stack_is_the_default_cloud(tmp_path: Path) -> None:
    env = {"HYBRID_ROUTER_STACK_FILE": str(_stack_file(tmp_path, os.getpid()))}
    loaded = load_settings(env=env, config_path=tmp_path / "none.toml")
    assert loaded.settings.cloud_url == "http://127.0.0.1:4567"
    assert loaded.settings.device_id == "laptop"
    assert loaded.sources["api_key"].startswith("local_stack:")
    explicit = load_settings(
        env={**env, "HYBRID_ROUTER_CLOUD_URL": "https://api.example.com"}, config_path=tmp_path / "none.toml"
    )
    assert explicit.settings.cloud_url == "https://api.example.com" and explicit.settings.api_key is None


def test_a_stopped_local_stack_is_ignored(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    env = {"HYBRID_ROUTER_STACK_FILE": str(_stack_file(tmp_path, int(dead.stdout)))}
    loaded = load_settings(env=env, config_path=tmp_path / "none.toml")
    assert loaded.settings.cloud_url is None and loaded.sources["cloud_url"] == "default"


def test_sagemaker_container_settings_reach_the_backend(tmp_path: Path) -> None:
    from edge_client.factory import build_strong

    env = {
        "HYBRID_ROUTER_STRONG_KIND": "sagemaker",
        "HYBRID_ROUTER_SAGEMAKER_ENDPOINT_NAME": "llama-ep",
        "HYBRID_ROUTER_SAGEMAKER_REGION": "us-east-1",
        "HYBRID_ROUTER_SAGEMAKER_CONTAINER": "vllm",
        "HYBRID_ROUTER_SAGEMAKER_BODY_FORMAT": "messages",
        "HYBRID_ROUTER_SAGEMAKER_SERVED_MODEL_NAME": "llama-3.1-8b-instruct",
        "HYBRID_ROUTER_SAGEMAKER_INFERENCE_COMPONENT": "llama-ic",
        "HYBRID_ROUTER_STRONG_MODEL": "llama-3.1-8b",
    }
    backend = build_strong(load_settings(env=env, config_path=tmp_path / "none.toml").settings)
    assert (backend.container, backend.served_model_name, backend.inference_component) == (
        "vllm",
        "llama-3.1-8b-instruct",
        "llama-ic",
    )
    assert backend.model_name == "llama-3.1-8b"  # what records call it; never sent as the served name
    with pytest.raises(ConfigError, match="vllm container does not take the 'tgi' body"):
        load_settings(env=env | {"HYBRID_ROUTER_SAGEMAKER_BODY_FORMAT": "tgi"}, config_path=tmp_path / "none.toml")


def test_privacy_settings_are_checked_when_loaded(tmp_path) -> None:
    env = {"HYBRID_ROUTER_PRIVACY_KINDS": "api_key, payment_card", "HYBRID_ROUTER_PRIVACY_PHONE_REGIONS": "de,fr"}
    settings = load_settings(env=env, config_path=tmp_path / "none.toml").settings
    assert (settings.privacy, settings.privacy_kinds) == ("local", ["api_key", "payment_card"])
    assert settings.privacy_phone_regions == ["DE", "FR"]
    for name, value, problem in (
        ("PRIVACY", "loud", "Input should be 'local', 'redact', 'refuse' or 'off'"),
        ("PRIVACY_KINDS", "card", "unknown privacy kind 'card'; valid kinds:"),
        ("PRIVACY_PHONE_REGIONS", "XX", "got ['XX']"),
    ):
        with pytest.raises(ConfigError, match=re.escape(problem)):
            load_settings(env={f"HYBRID_ROUTER_{name}": value}, config_path=tmp_path / "none.toml")
