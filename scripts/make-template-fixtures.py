#!/usr/bin/env python3
"""Regenerates inference/tests/fixtures/chat_templates.json: chat templates in the styles
of the supported families, rendered by llama-cpp-python's Jinja2ChatFormatter (the
renderer llama-cpp-python uses for a GGUF's `tokenizer.chat_template`, configured as
Hugging Face Transformers configures Jinja) for a few conversations. CI does not run
this; inference/tests/chat_templates.rs renders the same templates with minijinja and
compares.

The real vocabularies and templates of these families cannot be downloaded here, so the
templates are written out below: SmolLM2's is the default model file's own; the others
follow their families' published templates (Qwen3's without its tool-call branches).

Usage: ~/.cache/neuroshard/venv-llama/bin/python scripts/make-template-fixtures.py
"""

import json
import os

from llama_cpp.llama_chat_format import Jinja2ChatFormatter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "inference", "tests", "fixtures", "chat_templates.json")

SMOLLM2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] "
    "| trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
    "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

QWEN2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

QWEN3 = """{%- if messages[0].role == 'system' %}
    {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and message.content is string and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.content is string %}
        {%- set content = message.content %}
    {%- else %}
        {%- set content = '' %}
    {%- endif %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is string %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in content %}
                {%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}
                {%- set content = content.split('</think>')[-1].lstrip('\\n') %}
            {%- endif %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\\n' + content }}
        {%- endif %}
        {{- '<|im_end|>\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\\n\\n</think>\\n\\n' }}
    {%- endif %}
{%- endif %}"""

MISTRAL = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant "
    "roles are supported!') }}{% endif %}{% endfor %}"
)

TEMPLATES = [
    ("smollm2", SMOLLM2, "<|im_start|>", "<|im_end|>"),
    ("llama3", LLAMA3, "<|begin_of_text|>", "<|eot_id|>"),
    ("qwen2", QWEN2, "<|endoftext|>", "<|im_end|>"),
    ("qwen3", QWEN3, "<|endoftext|>", "<|im_end|>"),
    ("mistral", MISTRAL, "<s>", "</s>"),
]


def msg(role, content):
    return {"role": role, "content": content}


CONVERSATIONS = [
    [msg("user", "Hi")],
    [msg("system", "Be brief."), msg("user", "What is 2+2?"), msg("assistant", "4"),
     msg("user", "And 3+3?")],
    [msg("user", "  spaced\n text  "), msg("assistant", "<think>\nadd\n</think>\n\n ok "),
     msg("user", "bye")],
    [msg("user", "Héllo 日本語 🚀"), msg("assistant", "Bonjour")],
]


def render(source, bos, eos, messages):
    try:
        formatter = Jinja2ChatFormatter(template=source, eos_token=eos, bos_token=bos)
        return {"text": formatter(messages=messages).prompt}
    except Exception as e:  # the template refused the conversation
        return {"error": str(e)}


def main():
    cases = []
    for name, source, bos, eos in TEMPLATES:
        renders = [render(source, bos, eos, c) for c in CONVERSATIONS]
        cases.append({"name": name, "template": source, "bos_token": bos, "eos_token": eos,
                      "renders": renders})
    with open(OUT, "w") as f:
        json.dump({"conversations": CONVERSATIONS, "cases": cases}, f, indent=1,
                  ensure_ascii=False)
        f.write("\n")
    print(f"{OUT}: {len(cases)} templates x {len(CONVERSATIONS)} conversations")


if __name__ == "__main__":
    main()
