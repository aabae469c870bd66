"""Chat templates' own Jinja texts (the oracle for app_asm/template.s), and how to render them.

Each text is the model's `chat_template` as published in its tokenizer_config.json on its
Hugging Face hub page (or, for SmolLM2 and Qwen, read from the GGUF files'
`tokenizer.chat_template` in ../shared/models). `render` uses jinja2 the way transformers'
apply_chat_template does: trim_blocks and lstrip_blocks on, `raise_exception` available,
bos_token/eos_token given.

Formats whose template has no system role (Gemma) get the system text the way Gemma 3's
template and llama.cpp place it: at the start of the first user message, followed by a blank
line (`FOLD_SYSTEM`).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

MODELS = Path(__file__).resolve().parents[3] / "shared" / "models"
SMOLLM2 = MODELS / "SmolLM2-135M-Instruct.Q4_1.gguf"
QWEN2_VOCAB = MODELS / "vocab" / "ggml-vocab-qwen2.gguf"
PHI3_VOCAB = MODELS / "vocab" / "ggml-vocab-phi-3.gguf"

# HuggingFaceTB/SmolLM2-135M-Instruct: the GGUF's tokenizer.chat_template (same as its
# tokenizer_config.json). Inserts a default system message when none is given.
SMOLLM2_TEXT = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}")

# meta-llama/Llama-2-7b-chat-hf, tokenizer_config.json
LLAMA2_TEXT = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}"
    "{% endif %}{% endfor %}")

# meta-llama/Meta-Llama-3-8B-Instruct, tokenizer_config.json
LLAMA3_TEXT = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}")

# TinyLlama/TinyLlama-1.1B-Chat-v1.0 (HuggingFaceH4/zephyr-7b-beta's), tokenizer_config.json
ZEPHYR_TEXT = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n"
    "{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n"
    "{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n"
    "{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n"
    "{% endfor %}")

# microsoft/Phi-3-mini-4k-instruct, tokenizer_config.json
PHI3_TEXT = (
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}"
    "{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}")

# google/gemma-2-2b-it, tokenizer_config.json
GEMMA_TEXT = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}"
    "{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}")

# mistralai/Mistral-7B-Instruct-v0.2, tokenizer_config.json (mistralai's "v1" template with a
# system prompt)
MISTRAL_TEXT = (
    "{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content'] %}"
    "\n    {%- set loop_messages = messages[1:] %}\n{%- else %}\n"
    "    {%- set loop_messages = messages %}\n{%- endif %}\n\n{{- bos_token }}\n"
    "{%- for message in loop_messages %}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n"
    "        {{- raise_exception('After the optional system message, conversation roles must "
    "alternate user/assistant/user/assistant/...') }}\n    {%- endif %}\n"
    "    {%- if message['role'] == 'user' %}\n"
    "        {%- if loop.first and system_message is defined %}\n"
    "            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}\n"
    "        {%- else %}\n            {{- ' [INST] ' + message['content'] + ' [/INST]' }}\n"
    "        {%- endif %}\n    {%- elif message['role'] == 'assistant' %}\n"
    "        {{- ' ' + message['content'] + eos_token}}\n    {%- else %}\n"
    "        {{- raise_exception('Only user and assistant roles are supported, with the exception "
    "of an initial optional system message!') }}\n    {%- endif %}\n{%- endfor %}\n")

# (row name, Jinja text, bos_token, eos_token, system folded into the first user message)
JINJA = {
    "chatml": (SMOLLM2_TEXT, "<|im_start|>", "<|im_end|>", False),
    "llama2": (LLAMA2_TEXT, "<s>", "</s>", False),
    "llama3": (LLAMA3_TEXT, "<|begin_of_text|>", "<|end_of_text|>", False),
    "zephyr": (ZEPHYR_TEXT, "<s>", "</s>", False),
    "phi3": (PHI3_TEXT, "<s>", "<|endoftext|>", False),
    "gemma": (GEMMA_TEXT, "<bos>", "<eos>", True),
    "mistral": (MISTRAL_TEXT, "<s>", "</s>", False),
}

# More templates that must be recognised (detection only): older or sibling versions.
DETECT_ONLY = {
    # mistralai/Mistral-7B-Instruct-v0.1, tokenizer_config.json (no system role)
    "mistral": ("{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') "
                "!= (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must "
                "alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role']"
                " == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif "
                "message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}"
                "{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}"
                "{% endfor %}"),
    # teknium/OpenHermes-2.5-Mistral-7B, tokenizer_config.json (plain chatml)
    "chatml": ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
               "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt"
               " %}{{ '<|im_start|>assistant\n' }}{% endif %}"),
}


def render(text: str, messages: list[dict], bos: str, eos: str) -> str:
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message):
        raise jinja2.TemplateError(message)

    env.globals["raise_exception"] = raise_exception
    return env.from_string(text).render(messages=messages, bos_token=bos, eos_token=eos,
                                        add_generation_prompt=True)


def conversation(system: str | None, turns: list[str], fold_system: bool) -> list[dict]:
    """messages for jinja: [system], then user/assistant alternating (turns[0] is a user's)."""
    msgs = [{"role": "user" if i % 2 == 0 else "assistant", "content": t}
            for i, t in enumerate(turns)]
    if system is not None:
        if fold_system:
            msgs[0] = {"role": "user", "content": system + "\n\n" + msgs[0]["content"]}
        else:
            msgs.insert(0, {"role": "system", "content": system})
    return msgs


@lru_cache(maxsize=None)
def gguf_template(path: Path) -> str | None:
    """A GGUF file's tokenizer.chat_template, or None (read by tests/reference/gguf.py; the
    texts above were checked against gguf-py's GGUFReader)."""
    from tests.reference.gguf import read_gguf
    value = read_gguf(path).metadata.get("tokenizer.chat_template")
    return None if value is None else value.decode("utf-8")
