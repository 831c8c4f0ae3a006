"""Prompts rendered for the generate body ("tgi"): the model's own Jinja chat template, or a built-in one, and the
stop parameter each container names."""

from __future__ import annotations

import json

import pytest

from hybrid_router.backends.base import BackendError
from hybrid_router.backends.sagemaker import build_request_body, render_chat_prompt, validate_chat_template

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": [{"type": "text", "text": "And of Spain?"}]},
]

# The chat_template of Qwen2.5-Instruct's tokenizer_config.json without its tools branch (a chatml model): the
# model's own template must render exactly what the built-in chatml renders.
QWEN_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if (message.role == 'user') or (message.role == 'system' and not loop.first) or (message.role == 'assistant') %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# Mistral-7B-Instruct-v0.1's chat_template (tokenizer_config.json): alternating user/assistant, no system role.
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)


# What the setting holds when it is given the model's tokenizer_config.json: the template and its special tokens.
MISTRAL_CONFIG = json.dumps(
    {
        "bos_token": {"__type": "AddedToken", "content": "<s>", "special": True},
        "eos_token": {"__type": "AddedToken", "content": "</s>", "special": True},
        "chat_template": MISTRAL_TEMPLATE,
    }
)


def test_the_models_own_template_renders_as_the_model_expects() -> None:
    assert render_chat_prompt(MESSAGES, QWEN_TEMPLATE) == render_chat_prompt(MESSAGES, "chatml")
    # From its tokenizer_config.json: the eos token ends each answer; BOS is left to the container's tokenizer.
    assert render_chat_prompt(MESSAGES[1:], MISTRAL_CONFIG) == (
        "[INST] Capital of France? [/INST]Paris.</s> [INST] And of Spain? [/INST]"
    )
    named = json.dumps(
        {"chat_template": [{"name": "tool_use", "template": "x"}, {"name": "default", "template": QWEN_TEMPLATE}]}
    )
    assert render_chat_prompt(MESSAGES, named) == render_chat_prompt(MESSAGES, "chatml")


def test_a_template_that_refuses_the_messages_is_rejected_input() -> None:
    with pytest.raises(BackendError) as refused:
        render_chat_prompt(MESSAGES, MISTRAL_TEMPLATE)  # a system message: Mistral v0.1 has no such role
    assert refused.value.cause == "strong_rejected_input" and refused.value.status_code == 400
    assert "Conversation roles must alternate" in str(refused.value)


def test_built_in_mistral_folds_the_system_message_into_the_first_turn() -> None:
    assert render_chat_prompt(MESSAGES, "mistral") == (
        "[INST] Be brief.\n\nCapital of France? [/INST] Paris.</s>[INST] And of Spain? [/INST]"
    )


def test_unknown_or_broken_templates_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="unknown chat template 'zephyr'"):
        validate_chat_template("zephyr")
    with pytest.raises(ValueError, match="not valid Jinja"):
        validate_chat_template("{% if messages %}")
    with pytest.raises(ValueError, match="tokenizer_config.json with a chat_template"):
        validate_chat_template('{"eos_token": "</s>"}')
    assert validate_chat_template(QWEN_TEMPLATE) == QWEN_TEMPLATE


def test_each_container_names_its_stop_parameter() -> None:
    user = MESSAGES[1:2]
    tgi = build_request_body(user, "tgi", 8, 0.0, stream=False, chat_template="chatml", stop=["a", "b", "c", "d"])
    assert tgi["parameters"]["stop"] == ["a", "b", "c", "d"]  # TGI's limit of 4 leaves no room for <|im_end|>
    lmi = build_request_body(user, "tgi", 8, 0.0, stream=False, chat_template="chatml", stop=["a"], container="lmi")
    assert lmi["parameters"]["stop_sequences"] == ["a", "<|im_end|>"] and "stop" not in lmi["parameters"]
    assert "decoder_input_details" not in lmi["parameters"]  # vLLM-only in LMI, and refused with streaming
    with pytest.raises(ValueError, match="vllm container does not take the 'tgi' body"):
        build_request_body(user, "tgi", 8, 0.0, stream=False, container="vllm")
    chat = build_request_body(user, "messages", 8, 0.0, stream=True, container="lmi")
    assert "stream_options" not in chat and "model" not in chat
