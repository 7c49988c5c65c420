#!/usr/bin/env python3
"""Writes the chat-template fixtures that Tests/QuernModelsTests/ChatTemplateTests.swift
checks Quern's Jinja engine against, byte for byte, without Python:

  fixtures/text/chat-templates.json   every template in fixtures/text/chat-templates/*.jinja
                                      applied to every conversation below, with
                                      add_generation_prompt false and true, by transformers'
                                      tokenizer.apply_chat_template(..., tokenize=False)
                                      (the output, or the exception it raised)
  fixtures/text/jinja-semantics.json  small templates exercising one Jinja2 rule each,
                                      rendered by the environment transformers compiles
                                      chat templates with (or the exception raised)

Usage: python make_chat_template_fixture.py TOKENIZER_DIR
  (a Python with transformers 5.x and jinja2; TOKENIZER_DIR is any Hugging Face tokenizer
  directory, e.g. SmolLM2-135M-Instruct's: its special tokens are cleared and each
  template gets its own model's bos/eos tokens)

The templates are the real ones, taken from public sources named in SOURCES. The date
strftime_now reads is pinned by replacing the `datetime` that transformers'
chat_template_utils calls `.now()` on with one whose now() is NOW; the Swift tests pass
the same date.
"""
import datetime as _dt
import json, os, sys

import jinja2
import transformers
from transformers import AutoTokenizer
from transformers.utils import chat_template_utils

HERE = os.path.dirname(os.path.abspath(__file__))
TEXT = os.path.join(HERE, "..", "fixtures", "text")
NOW = _dt.datetime(2025, 3, 7, 14, 5, 9, 123456)


class _PinnedDatetime(_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return NOW


chat_template_utils.datetime = _PinnedDatetime

HFJS = "huggingface/huggingface.js"
E2E = f"{HFJS} packages/jinja/test/e2e.test.js @ ee92cdbe6f08eddd24888204853c2510028c588e"
OLLAMA = (f"{HFJS} packages/ollama-utils/src/chat-template-automap.ts @ 007948d5aac310316dd57b5d8e5c091e864418dc "
          "(GGUF tokenizer.chat_template of the Ollama library model)")
BOS_LLAMA3, EOT_LLAMA3 = "<|begin_of_text|>", "<|eot_id|>"

# name: (source, bos_token, eos_token)
SOURCES = {
    "smollm2-135m-instruct": ("HuggingFaceTB/SmolLM2-135M-Instruct tokenizer_config.json chat_template "
                              "(the model /work/shared/bench/setup-llm-anchors.sh installs)", "<|im_start|>", "<|im_end|>"),
    "chatml": (f"{E2E}, entry _base (plain ChatML)", None, "<|im_end|>"),
    "llama-3-8b-instruct": (f"{OLLAMA}: library/llama3:8b (meta-llama/Meta-Llama-3-8B-Instruct)", BOS_LLAMA3, EOT_LLAMA3),
    "llama-3.1-8b-instruct": (f"{E2E}, entry meta-llama/Llama-3.1-8B-Instruct", BOS_LLAMA3, EOT_LLAMA3),
    "llama-3.2-3b-instruct": (f"{OLLAMA}: library/llama3.2:3b (meta-llama/Llama-3.2-3B-Instruct, with strftime_now)",
                              BOS_LLAMA3, EOT_LLAMA3),
    "qwen2-0.5b-instruct": (f"{OLLAMA}: library/qwen2:0.5b (Qwen/Qwen2-0.5B-Instruct)", None, "<|im_end|>"),
    "qwen2.5-7b-instruct": (f"{E2E}, entry Qwen/Qwen2.5-7B-Instruct", None, "<|im_end|>"),
    "qwen3-0.6b": (f"{E2E}, entry Qwen/Qwen3-0.6B", None, "<|im_end|>"),
    "mistral-7b-instruct-v0.1": (f"{E2E}, entry TheBloke/Mistral-7B-Instruct-v0.1-GPTQ", "<s>", "</s>"),
    "mistral-7b-instruct-v0.3": (f"{E2E}, entry mistralai/Mistral-7B-Instruct-v0.3 (JSON Schema)", "<s>", "</s>"),
    "gemma-2-2b-it": (f"{OLLAMA}: library/gemma2:2b (google/gemma-2-2b-it)", "<bos>", "<eos>"),
    "zephyr-7b-beta": (f"{E2E}, entry HuggingFaceH4/zephyr-7b-beta", "<s>", "</s>"),
    "phi-3-mini-4k-instruct": (f"{OLLAMA}: library/phi3:3.8b (microsoft/Phi-3-mini-4k-instruct)", "<s>", "<|endoftext|>"),
    "deepseek-r1": (f"{E2E}, entry deepseek-ai/DeepSeek-R1", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "hermes-2-pro-llama-3-8b-tool-use": (f"{E2E}, entry NousResearch/Hermes-2-Pro-Llama-3-8B (JSON Schema)",
                                         BOS_LLAMA3, "<|im_end|>"),
}

TOOLS = [
    {"type": "function", "function": {
        "name": "get_current_weather", "description": "Get the current weather in a given location",
        "parameters": {"type": "object", "properties": {
            "location": {"type": "string", "description": "The city and country, e.g. Paris, France"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["location"]}}},
    {"type": "function", "function": {
        "name": "add", "description": "Adds numbers; returns 1.0 for nothing.",
        "parameters": {"type": "object", "properties": {
            "a": {"type": "number", "description": "First (default 0.5)"},
            "b": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}}},
            "required": ["a", "b"]}}},
]

TOOL_CALL = [
    {"role": "user", "content": "What's the weather in Paris?"},
    {"role": "assistant", "content": "", "tool_calls": [{"id": "abc123def", "type": "function", "function": {
        "name": "get_current_weather", "arguments": {"location": "Paris, France", "unit": "celsius"}}}]},
    {"role": "tool", "tool_call_id": "abc123def", "name": "get_current_weather",
     "content": "{\"temperature\": 22.5, \"unit\": \"celsius\"}"},
    {"role": "assistant", "content": "It is 22.5 °C in Paris."},
]

CONVERSATIONS = [
    {"id": "user", "messages": [{"role": "user", "content": "Hello, how are you?"}]},
    {"id": "system-user", "messages": [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "What is 2+2?"}]},
    {"id": "multi-turn", "messages": [
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."}]},
    {"id": "system-long", "messages": [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "One"}, {"role": "assistant", "content": "Un"},
        {"role": "user", "content": "Two"}, {"role": "assistant", "content": "Deux"},
        {"role": "user", "content": "Three"}]},
    {"id": "trailing-assistant", "messages": [
        {"role": "user", "content": "Write a haiku."},
        {"role": "assistant", "content": "Silent pond at dusk"}]},
    {"id": "unicode-json", "messages": [{"role": "user", "content":
        "Ünïcödé — 日本語 🙂👍🏽 {\"key\": [1, 2.5, null], \"b\": true} <b>&amp;</b> 'single' \"double\" "
        "back\\slash\ttab\u00a0nbsp\u200bzw e\u0301"}]},
    {"id": "empty-content", "messages": [{"role": "system", "content": ""}, {"role": "user", "content": ""}]},
    {"id": "whitespace", "messages": [
        {"role": "system", "content": "  \n system with spaces \n\n"},
        {"role": "user", "content": "\n\n  leading and trailing  \t\n"},
        {"role": "assistant", "content": "   "},
        {"role": "user", "content": " \r\n end \n"}]},
    {"id": "tools-user", "tools": TOOLS, "messages": [{"role": "user", "content": "What's the weather in Paris?"}]},
    {"id": "tool-call", "tools": TOOLS, "messages": TOOL_CALL},
    {"id": "reject-two-users", "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
    {"id": "reject-assistant-first", "messages": [
        {"role": "assistant", "content": "I start."}, {"role": "user", "content": "ok"}]},
    {"id": "null-and-extra-keys", "messages": [
        {"role": "system", "content": "Sys", "name": None},
        {"role": "user", "content": "Hi", "name": "alice", "tool_calls": None}]},
    {"id": "reasoning", "messages": [
        {"role": "user", "content": "What is 1+1?"},
        {"role": "assistant", "content": "2", "reasoning_content": "Simple addition."},
        {"role": "user", "content": "And 2+2?"},
        {"role": "assistant", "content": "<think>\nadd again\n</think>\n\n4"}]},
    {"id": "content-parts", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Describe this."}, {"type": "text", "text": "Briefly."}]}]},
    {"id": "number-content", "messages": [{"role": "user", "content": 1e16}]},
    {"id": "no-thinking", "kwargs": {"enable_thinking": False, "date_string": "01 Jan 2030"},
     "messages": [{"role": "user", "content": "Quick answer please."}]},
]


def error(e):
    return {"type": type(e).__name__, "message": str(e)}


def chat_templates(tok):
    templates, cases = [], []
    for name, (source, bos, eos) in SOURCES.items():
        path = os.path.join(TEXT, "chat-templates", name + ".jinja")
        with open(path, encoding="utf-8", newline="") as f:
            template = f.read()
        templates.append({"name": name, "file": f"chat-templates/{name}.jinja", "source": source,
                          "bos_token": bos, "eos_token": eos})
        special = {k: v for k, v in (("bos_token", bos), ("eos_token", eos)) if v is not None}
        for conv in CONVERSATIONS:
            for agp in (False, True):
                case = {"template": name, "conversation": conv["id"], "add_generation_prompt": agp}
                try:
                    case["output"] = tok.apply_chat_template(
                        conv["messages"], chat_template=template, tokenize=False, add_generation_prompt=agp,
                        tools=conv.get("tools"), **special, **conv.get("kwargs", {}))
                except Exception as e:  # what transformers raises is the expectation
                    case["error"] = error(e)
                cases.append(case)
    return templates, cases


# One Jinja2 rule each; rendered with CONTEXT in scope.
CONTEXT = {
    "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"},
                 {"role": "assistant", "content": "Yo", "extra": None}],
    "xs": [3, 1, 2], "words": ["b", "A", "a", "c"], "d": {"b": 2, "a": 1, "n": None}, "s": "  Hello World  ",
    "f": 2.5, "n": 7, "t": True, "nested": {"l": [{"k": "v", "num": 1.0}, {"k": "w", "num": 2}]},
    "u": "héllo wörld ß", "empty": "", "nil": None,
}

SEMANTICS = [
    # whitespace control, trim_blocks, lstrip_blocks
    "a\n{% if true %}\nb\n{% endif %}\nc",
    "a\n  {% if true %}\n  b\n  {% endif %}\nc",
    "a  {%- if true %} b {% endif -%}  c",
    "a\n  {{- 'x' -}}  \nb",
    "a\n  {{ 'x' }}  \nb",
    "a\n  {%+ if true %}b{% endif +%}\nc",
    "{% for x in xs %}\n  {{ x }}\n{% endfor %}\n",
    "{% for x in xs -%}\n  {{ x }}\n{%- endfor %}",
    "line\n\t {# comment #}\nnext",
    "a {#- c -#} b",
    "{# multi\nline #}\nafter",
    "x  {% raw %}{{ not parsed }} {% if %}{% endraw %}  y",
    "{% raw -%}   kept {{ x }}   {%- endraw %}|",
    "trailing newline dropped\n",
    "two trailing newlines\n\n",
    "crlf\r\nlines\r\n{% if true %}\r\nx{% endif %}",
    "{% if true %}  \n  x{% endif %}",
    "   {% if true %}x{% endif %}",
    "a {% if true %}x{% endif %}",
    "{{ 'a' }}\n{% if true %}\n  b\n{%- endif %}",
    "{%- set x = 1 -%}\n\n  {{ x }}  \n",
    "a\n{%- if false %}x{% else %}\ny{% endif %}",
    # literals and printing
    "{{ 1 }} {{ 1.0 }} {{ 1.5e3 }} {{ 1e16 }} {{ 1e15 }} {{ 0.0001 }} {{ 0.00001 }} {{ -0.0 }} {{ 1_000 }}",
    "{{ 0x1F }} {{ 0o17 }} {{ 0b101 }} {{ 007 if false else 'x' }}",
    "{{ true }} {{ True }} {{ false }} {{ none }} {{ None }} {{ [] }} {{ () }} {{ {} }}",
    "{{ [1, 'a', none, true, 1.0, (1,), (1, 2), {'k': [2]}] }}",
    "{{ \"it's\" }} {{ ['it\\'s', \"say \\\"hi\\\"\", 'both \\' \"'] }}",
    "{{ ['tab\\there', 'nl\\n', '\\x01', 'é', '\\u200b', '\\xa0', '🙂', 'back\\\\slash'] }}",
    "{{ 'a\\tb\\x41\\u00e9\\U0001F600\\101\\q\\\n' }}",
    "{{ 'adjacent' 'strings' }}",
    "{{ d }} {{ messages[2] }} {{ nested }}",
    "{{ 0.1 + 0.2 }} {{ 1/3 }} {{ 2.0 ** 70 }} {{ 123456789.123456789 }} {{ 1e300 * 1e10 }} {{ -1e300 * 1e10 }}",
    "{{ f }} {{ n / 2 }} {{ n // 2 }} {{ -n // 2 }} {{ n % 3 }} {{ -n % 3 }} {{ n % -3 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }}",
    "{{ 2 ** 10 }} {{ 2 ** -1 }} {{ 2 ** 0.5 }} {{ -2 ** 2 }} {{ (-2) ** 2 }} {{ 10 ** 9 }}",
    "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 1 - 2 - 3 }} {{ 2 * 3 ~ 4 }} {{ 1 ~ 2 + 3 }}",
    "{{ 'a' ~ 1 ~ none ~ true ~ [1] ~ undefined_name }}",
    "{{ 'ab' * 3 }} {{ 3 * 'ab' }} {{ [1, 2] * 2 }} {{ [1] + [2] }} {{ (1,) + (2,) }} {{ 'a' + 'b' }} {{ true + 1 }}",
    "{{ n > 3 }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 1 == 1.0 }} {{ 1 != '1' }}",
    "{{ 1 in xs }} {{ 9 not in xs }} {{ 'a' in d }} {{ 'ell' in s }} {{ 'x' in undefined_name }} {{ (1, 2) == (1, 2) }}",
    "{{ t and 'yes' }} {{ none or 'fallback' }} {{ 0 or [] }} {{ '' and 'x' }} {{ not none }} {{ not 'a' }}",
    "{{ 'y' if n > 3 else 'n' }} {{ 'y' if n < 3 }}|{{ 'a' if false else 'b' if false else 'c' }}",
    "{{ -n }} {{ +n }} {{ -f|abs }} {{ -(3) }} {{ - 2 ** 2 }}",
    # attributes, items, slices
    "{{ messages[0].role }} {{ messages[0]['content'] }} {{ messages[-1].content }} {{ d.a }} {{ d['b'] }}",
    "{{ messages[1:] | length }} {{ xs[::-1] }} {{ xs[1:] }} {{ xs[:-1] }} {{ xs[5:] }} {{ xs[-10:1] }} {{ xs[::2] }}",
    "{{ s[2:7] }} {{ s[::-1] }} {{ u[1] }} {{ u[-1] }} {{ u[1:4] }} {{ 'abcdef'[1:-1:2] }} {{ 'abc'[10:] }}|",
    "{{ xs[10] }}|{{ d.zzz }}|{{ d['zzz'] }}|{{ messages[2].extra }}|{{ nested.l.0.k }}|{{ nested['l'][1]['num'] }}",
    "{{ d.items }}|{{ d['items'] is defined }}|{{ (d.keys() | list) }}|{{ d.values() | list }}|{{ d.get('a') }}|{{ d.get('q', 5) }}|{{ d.get('q') }}",
    "{{ d.items() }} {{ d.keys() }} {{ d.values() }}",
    "{{ messages[0].content is defined }} {{ messages[0].name is defined }} {{ messages[2].extra is none }}",
    "{{ undefined_name.attr }}",
    "{{ d.zzz.attr }}",
    "{{ xs[10].a }}",
    "{{ nil.attr }}",
    "{{ xs.append(4) }}",
    "{{ d.update({'a': 2}) }}",
    "{{ xs.append }}|",
    "{{ d.__class__ }}|",
    # statements
    "{% set a = 1 %}{% set b, c = 2, 3 %}{{ a }}{{ b }}{{ c }}",
    "{% set x = 5 %}{% for i in [1, 2] %}{{ x }}{% set x = i %}{{ x }}{% endfor %}{{ x }}",
    "{% for i in [1, 2] %}{% if i == 2 %}[{{ y }}]{% endif %}{% set y = i %}{% endfor %}[{{ y }}]",
    "{% if true %}{% set z = 3 %}{% endif %}{{ z }}",
    "{% set ns = namespace(a=1, b='x') %}{% for i in xs %}{% set ns.a = ns.a + i %}{% endfor %}{{ ns.a }} {{ ns.b }} {{ ns }}",
    "{% set ns = namespace() %}{% set ns.found = false %}{% for m in messages %}{% if m.role == 'user' %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.found }}",
    "{% set ns = namespace(d) %}{{ ns.a }}{{ ns.b }}{{ ns.zz }}|",
    "{% set ns = namespace(_x=1) %}",
    "{% set ns = namespace() %}{% set ns._y = 1 %}",
    "{% set notns = 1 %}{% set notns.a = 2 %}",
    "{% set block %}inner {{ n }}{% endset %}[{{ block }}]",
    "{% set block | upper %}  shout {{ n }}  {% endset %}[{{ block }}]",
    "{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}",
    "{% for x in xs %}{{ loop.previtem }}-{{ loop.nextitem }}-{{ loop.cycle('a', 'b') }} {% endfor %}",
    "{% for x in [1, 1, 2] %}{{ loop.changed(x) }} {% endfor %}{% for x in xs %}{{ loop }}{% endfor %}",
    "{% for m in messages if m.role != 'system' %}{{ loop.index }}/{{ loop.length }}:{{ m.role }} {% endfor %}",
    "{% for x in [] %}x{% else %}empty{% endfor %}{% for x in undefined_name %}x{% else %}undef{% endfor %}",
    "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}",
    "{% for a, b in [[1, 2], (3, 4), 'xy'] %}{{ a }}{{ b }} {% endfor %}",
    "{% for a, b in [[1, 2, 3]] %}{% endfor %}",
    "{% for c in 'héllo' %}{{ c }}.{% endfor %}",
    "{% for x in xs %}{% if x == 1 %}{% break %}{% endif %}{{ x }}{% endfor %}|{% for x in xs %}{% if x == 1 %}{% continue %}{% endif %}{{ x }}{% endfor %}",
    "{% for i in range(3) %}{% for j in range(i) %}{{ i }}{{ j }}{{ loop.index }} {% endfor %}{{ loop.index }};{% endfor %}",
    "{% for x in none %}{% endfor %}",
    "{% for x in 5 %}{% endfor %}",
    "{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', 'Hi') }} {{ greet(greeting='Yo', name='Cy') }} {{ greet() }}|",
    "{% set x = 1 %}{% macro m(a, b=2) %}{{ a }}{{ b }}{{ x }}{{ varargs }}{{ kwargs }}{% endmacro %}{% set x = 3 %}{{ m(1) }}|{{ m(1, 3, 4, z=5) }}",
    "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}",
    "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(b=2) }}",
    "{% macro m() %}x{% endmacro %}{{ m }}|{{ m() ~ m() }}|{{ m() | length }}",
    "{% macro rec(n) %}{% if n > 0 %}{{ n }}{{ rec(n - 1) }}{% endif %}{% endmacro %}{{ rec(5) }}",
    "{% macro box() %}[{{ caller() }}]{% endmacro %}{% call box() %}inside {{ n }}{% endcall %}",
    "{% macro row(x) %}<{{ caller(x * 2) }}>{% endmacro %}{% call(v) row(4) %}v={{ v }}{% endcall %}",
    "{% filter upper %}loud {{ n }}{% endfilter %}",
    "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a }}|",
    "{% print 'printed', n %}",
    "{% generation %}assistant text{% endgeneration %}",
    # filters
    "{{ s | trim }}|{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ 'xxhixx'.strip('x') }}|{{ 'xxhixx' | trim('x') }}",
    "{{ s | length }} {{ xs | count }} {{ d | length }} {{ undefined_name | length }} {{ u | length }}",
    "{{ s | upper }} {{ s | lower }} {{ 'hello wORLD-x (y)z' | title }} {{ 'hELLO' | capitalize }} {{ u | upper }}",
    "{{ 'they\\'re bill\\'s' | title }} {{ 'they\\'re bill\\'s'.title() }} {{ 'ǆemal' | title }} {{ 'ß' | upper }}",
    "{{ 'a-b-c' | replace('-', '+') }} {{ 'aaa' | replace('a', 'b', 2) }} {{ 'abc' | replace('', '.') }} {{ 1.5 | replace('.', ',') }}",
    "{{ xs | join(', ') }} {{ xs | join }} {{ messages | join('|', attribute='role') }} {{ words | join('-') }}",
    "{{ xs | first }} {{ xs | last }} {{ 'abc' | first }} {{ 'abc' | last }} {{ [] | first }}|{{ d | first }}",
    "{{ undefined_name | default('dflt') }} {{ none | default('x') }} {{ '' | default('e', true) }} {{ 0 | d('z', boolean=true) }} {{ 5 | default }}",
    "{{ undefined_name | trim }}|{{ undefined_name | list }}|{{ undefined_name | join(',') }}|{{ undefined_name | upper }}|{{ undefined_name | first }}|{{ undefined_name ~ 'x' }}|{{ undefined_name | string }}",
    "{{ undefined_name | int }}",
    "{{ undefined_name | tojson }}",
    "{{ undefined_name + 1 }}",
    "{{ undefined_name() }}",
    "{{ xs | string }} {{ none | string }} {{ 1.0 | string }} {{ d | string | length }}",
    "{{ '42' | int }} {{ '42.7' | int }} {{ 3.9 | int }} {{ -3.9 | int }} {{ 'x' | int }} {{ 'x' | int(7) }} {{ '0x1f' | int(0, 16) }} {{ ' 12 ' | int }} {{ '1_000' | int }} {{ true | int }}",
    "{{ '3.5' | float }} {{ 3 | float }} {{ 'x' | float }} {{ '1e3' | float }} {{ ' -2.5 ' | float }} {{ 'inf' | float }} {{ none | float(9) }}",
    "{{ 2.5 | round }} {{ 3.5 | round }} {{ 2.675 | round(2) }} {{ 42.55 | round(1, 'floor') }} {{ 42.51 | round(1, 'ceil') }} {{ 7 | round }} {{ -2.5 | round }} {{ 1234 | round(-2) }}",
    "{{ -3 | abs }} {{ -2.5 | abs }} {{ xs | sum }} {{ [1.5, 2] | sum }} {{ nested.l | sum(attribute='num') }} {{ xs | sum(start=10) }}",
    "{{ xs | max }} {{ xs | min }} {{ words | max }} {{ words | min }} {{ words | max(case_sensitive=true) }} {{ [] | max }}|{{ nested.l | max(attribute='num') }}",
    "{{ xs | sort }} {{ xs | sort(reverse=true) }} {{ words | sort }} {{ words | sort(case_sensitive=true) }} {{ nested.l | sort(attribute='k', reverse=true) | map(attribute='k') | list }}",
    "{{ [3, 1, 2, 1] | unique | list }} {{ words | unique | list }} {{ words | unique(case_sensitive=true) | list }}",
    "{{ xs | reverse | list }} {{ 'abc' | reverse }} {{ xs | list }} {{ 'ab' | list }} {{ d | list }} {{ range(3) | list }} {{ xs | reverse is iterable }}",
    "{{ xs | reverse }}",
    "{{ messages | selectattr('role', 'equalto', 'user') | list | length }} {{ messages | rejectattr('role', 'eq', 'user') | map(attribute='role') | join(',') }}",
    "{{ messages | selectattr('extra') | list }} {{ messages | selectattr('extra', 'none') | map(attribute='content') | list }} {{ messages | selectattr('extra', 'defined') | list | length }}",
    "{{ xs | select('odd') | list }} {{ xs | reject('odd') | list }} {{ [0, 1, '', 'a', none] | select | list }} {{ xs | select('gt', 1) | list }} {{ xs | select('in', [1, 3]) | list }}",
    "{{ xs | map('string') | join('-') }} {{ words | map('upper') | list }} {{ [{'a': 1}, {'b': 2}] | map(attribute='a', default=9) | list }} {{ [{'a': 1}, {'b': 2}] | map(attribute='a') | list }}",
    "{% if messages | selectattr('role', 'equalto', 'nobody') %}generators are true{% endif %}",
    "{% set g = xs | map('string') %}{{ g | list }}{{ g | list }}|",
    "{{ d | dictsort }} {{ d | dictsort(reverse=true) }} {{ {'b': 1, 'A': 2, 'a': 3} | dictsort }} {{ {'b': 1, 'A': 2, 'a': 3} | dictsort(true) }} {{ {'x': 2, 'y': 1} | dictsort(by='value') }}",
    "{{ d | items | list }} {% for k, v in d | items %}{{ k }}{% endfor %} {{ undefined_name | items | list }}",
    "{{ d | tojson }}|{{ 'é\\n\\u0001\"\\\\/' | tojson }}|{{ [1.0, 1e20, 0.5, none, true, 'x'] | tojson }}|{{ (1, 2) | tojson }}|{{ {} | tojson }}|{{ [] | tojson(indent=2) }}",
    "{{ nested | tojson(indent=2) }}",
    "{{ nested | tojson(indent=4, sort_keys=true) }}|{{ d | tojson(separators=(',', ':')) }}|{{ d | tojson(indent='\\t') }}|{{ 'é🙂' | tojson(ensure_ascii=true) }}|{{ {'a': {}} | tojson(indent=0) }}",
    "{{ {1: 'int key', 2.5: 'f', true: 'b', none: 'n'} | tojson }}",
    "{{ range(3) | tojson }}",
    "{{ 'hello\\nworld\\n\\nend' | indent }}|{{ 'hello\\nworld' | indent(2, true) }}|{{ 'a\\n\\nb' | indent(2, blank=true) }}|{{ 'x\\ny' | indent('> ') }}",
    "{{ '<a href=\"x\">&\\'</a>' | e }} {{ '<b>' | escape }} {{ '<b>' | safe }} {{ none | e }}",
    "{{ 'one two  three\\nfour' | wordcount }} {{ '%s and %d' | format('a', 3) }} {{ '%(x)s!' | format(x='named') }} {{ '%5.2f|%-4s|%03d|%x|%%' | format(3.14159, 'ab', 7, 255) }}",
    "{{ messages | map(attribute='role') | list | tojson }}",
    "{{ xs | attr('count') is defined }} {{ d | attr('a') }}|{{ messages[0] | attr('role') }}|",
    "{{ 'tojson' is filter }} {{ 'nofilter' is filter }} {{ 'odd' is test }}",
    # tests
    "{{ none is none }} {{ 1 is number }} {{ true is number }} {{ true is integer }} {{ 1.0 is float }} {{ 1 is float }} {{ 'a' is string }} {{ d is mapping }} {{ xs is mapping }}",
    "{{ xs is sequence }} {{ d is sequence }} {{ 's' is sequence }} {{ 1 is sequence }} {{ 's' is iterable }} {{ 1 is iterable }} {{ none is iterable }} {{ undefined_name is iterable }}",
    "{{ none is defined }} {{ undefined_name is defined }} {{ undefined_name is undefined }} {{ true is true }} {{ 1 is true }} {{ false is false }} {{ 0 is false }} {{ true is boolean }} {{ 1 is boolean }}",
    "{{ 3 is odd }} {{ 4 is even }} {{ 6 is divisibleby 3 }} {{ 6 is divisibleby(4) }} {{ 'ab' is lower }} {{ 'AB' is upper }} {{ '1' is lower }} {{ 2 is eq 2 }} {{ 2 is ne 2 }} {{ 3 is gt 2 }} {{ 3 is lessthan 2 }} {{ 2 is in xs }}",
    "{{ 1 is not none }} {{ xs is not string }} {{ not xs is string }} {{ 'x' is string and 1 is number }} {{ none is sameas none }} {{ range is callable }} {{ xs is callable }}",
    "{{ xs is nosuchtest }}",
    # methods
    "{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'a b  c '.split(none, 1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ 'x'.split('y') }}",
    "{{ 'l1\\nl2\\r\\nl3\\n'.splitlines() }} {{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'bc')) }} {{ 'abc'.upper() }} {{ 'ABC'.lower() }} {{ 'ab'.replace('a', 'z') }}",
    "{{ 'hello'.find('l') }} {{ 'hello'.rfind('l') }} {{ 'hello'.find('z') }} {{ 'héllo'.find('l') }} {{ 'hello'.count('l') }} {{ '-'.join(['a', 'b']) }} {{ 'ab'.capitalize() }}",
    "{{ '{} and {}'.format(1, 'x') }} {{ '{0}{1}{0}'.format('a', 'b') }} {{ '{name}!'.format(name='N') }} {{ '{{literal}} {}'.format(1) }} {{ '{!r}'.format('q') }}",
    "{{ '  x '.isspace() }} {{ '123'.isdigit() }} {{ 'abc'.isalpha() }} {{ 'a1'.isalnum() }} {{ ''.isdigit() }} {{ 'prefix-x'.removeprefix('prefix-') }} {{ 'a=b=c'.partition('=') }}",
    "{{ xs.index(2) }} {{ xs.count(3) }} {{ (1, 2, 2).count(2) }} {{ d.copy() }}",
    "{{ '-'.join([1, 2]) }}",
    "{{ 'abc'.zfill(5) }}",
    # globals
    "{{ range(5) | list }} {{ range(2, 5) | list }} {{ range(10, 0, -3) | list }} {{ range(0) | list }} {{ range(3) }} {{ range(1, 4) | length }} {{ range(4)[-1] }}",
    "{{ range(100001) | length }}",
    "{{ range(1, 2, 0) }}",
    "{{ dict(a=1, b=2) }} {{ dict([('x', 1)]) }} {{ dict(d, z=0) }} {{ dict() }}",
    "{{ raise_exception('Custom failure: ' ~ n) }}",
    "before{{ raise_exception('stop here') }}after",
    "{{ strftime_now('%Y-%m-%d %H:%M:%S %a %A %b %B %d %j %p %I %y %%') }}|{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%f|%z|%Z|') }}",
    "{{ lipsum() }}",
    # errors of type and value
    "{{ 1 + 'a' }}",
    "{{ 'a' + 1 }}",
    "{{ [1] + 'a' }}",
    "{{ 1 < 'a' }}",
    "{{ 1 / 0 }}",
    "{{ 1 // 0 }}",
    "{{ 'x' in 1 }}",
    "{{ 1 in 'abc' }}",
    "{{ 'x' * 'y' }}",
    "{{ -'x' }}",
    "{{ messages[0]['content'] + messages }}",
    "{{ xs | items }}",
    "{{ {[1]: 2} }}",
    # more corners: Unicode case and whitespace, number formats, scoping, filters on attributes
    "{{ 'ÉTÉ'.lower() }} {{ 'straße'.upper() }} {{ 'ﬁx'.upper() }} {{ 'ǅ'.lower() }} {{ 'İ'.lower() | length }} {{ 'ŉ'.capitalize() }} {{ 'hello world'.capitalize() }}",
    "{{ 'a\u00a0b\u3000c'.split() }} {{ 'a\u200bb'.split() }} {{ 'x\u2028y\u0085z'.splitlines() }} {{ ' \u00a0x\u2003 '.strip() | length }}",
    "{{ 'abc' < 'abd' }} {{ 'é' > 'z' }} {{ 'e\u0301' == 'é' }} {{ ('e\u0301' | length) }} {{ 'e\u0301'[0] }}",
    "{{ '%.2f' % 3.14159 }} {{ '%s=%s' % ('a', 1) }} {{ '%(a)s' % {'a': 1} }} {{ '%5s|%-5s|' % ('ab', 'cd') }} {{ '%r' % 'q' }} {{ '%e %g' % (12345.678, 0.0001) }}",
    "{{ 10 // 3.0 }} {{ -1 % 2.5 }} {{ 0.0 / 1 }} {{ 1e400 }} {{ 9007199254740993 }} {{ 3 / 1.5 }} {{ 2 ** 62 }} {{ 1.0 is odd }}",
    "{{ [1, 'a'] | sort }}",
    "{{ 3 is divisibleby 0 }}",
    "{{ none | list }}",
    "{{ d | sort }} {{ 'b,a' | list | sort | join }} {{ (1, 2) | list }} {{ {'a': 1}.items() | list }}",
    "{{ 0.1 | tojson }} {{ {'a': [1, {'b': none}]} | tojson(indent=2) }} {{ 'tab\there\u2028' | tojson }} {{ \"it's\" | tojson }} {{ messages[0] | tojson(sort_keys=true) }}",
    "{{ 'a' ~ 1.0 }} {{ none ~ '' }} {{ 1 if true }} {{ 'a' 'b' ~ 'c' }}",
    "{% set x = [1, 2] %}{% set y = x + [3] %}{{ x }}{{ y }} {{ namespace(a=1).a }}",
    "{% set ns = namespace(items=[]) %}{% for i in range(3) %}{% set ns.items = ns.items + [i] %}{% endfor %}{{ ns.items }}",
    "{% for k, v in d | dictsort %}{{ k }}{{ '' if loop.last else ',' }}{% endfor %} [{{ loop }}]",
    "{% for x in xs %}{% set outer = loop %}{% for y in xs %}{{ outer.index }}{{ loop.index }} {% endfor %}{% endfor %}",
    "{% macro m(a, b=a*2) %}{{ b }}{% endmacro %}{{ m(3) }} {% set e %}{% endset %}{{ e | length }}",
    "{%- if true -%}\n  x  \n{%- endif -%}\n{{- '' -}}\n  y",
    "{% if missing is defined and missing %}yes{% else %}no{% endif %} {{ [] | first is undefined }}",
    "{{ messages | map(attribute='role') | unique | list }} {{ ['1', '2'] | map('int') | sum }} {{ messages | selectattr('role', 'in', ['user', 'system']) | list | length }} {{ messages | rejectattr('extra', 'defined') | list | length }}",
    "{% set a = 1 %}{% with %}{% set a = 2 %}{{ a }}{% endwith %}{{ a }} {% set café = 'unicode name' %}{{ café }}",
    "{{ xs[1.0] }}|{{ xs['1'] }}|{{ d[none] }}|{{ 'abc'[-4] }}|{{ 'abc'[1] }}|{{ nested.l[0].num * 2 }}",
    "{{ messages | selectattr('role', 'equalto', 'user') | first }} {{ (messages | map(attribute='content') | list)[-1] }}",
    "{{ '\\x00\\x1f\\x7f\\x80\\ud7ff' | tojson }} {{ ['\\x7f', '\\x80', '\\xad', '\\U0010ffff'] }}",
    # syntax that jinja2 refuses
    "{% if %}",
    "{% for x in xs %}",
    "{% endfor %}",
    "{{ x + }}",
    "{{ 'unterminated }}",
    "{{ (1, 2 }}",
    "{% set = 1 %}",
    "{% unknowntag %}",
    "{{ x | nosuchfilter }}",
    "{# never closed",
    "{% raw %} never closed",
    "{% break %}",
    "{{ 1 is not is }}",
    "{% macro m(a=1, b) %}{% endmacro %}",
]


def semantics():
    cases = []
    for template in SEMANTICS:
        case = {"template": template}
        try:
            case["output"] = chat_template_utils._compile_jinja_template(template).render(**CONTEXT)
        except Exception as e:
            case["error"] = error(e)
        cases.append(case)
    return cases


def main():
    tok = AutoTokenizer.from_pretrained(sys.argv[1])
    for attr in ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"):
        setattr(tok, attr, None)
    templates, cases = chat_templates(tok)
    header = {"generator": "scripts/make_chat_template_fixture.py", "transformers": transformers.__version__,
              "jinja2": jinja2.__version__, "now": NOW.isoformat()}
    with open(os.path.join(TEXT, "chat-templates.json"), "w", encoding="utf-8") as f:
        json.dump({**header, "templates": templates, "conversations": CONVERSATIONS, "cases": cases},
                  f, ensure_ascii=False, indent=1)
        f.write("\n")
    with open(os.path.join(TEXT, "jinja-semantics.json"), "w", encoding="utf-8") as f:
        json.dump({**header, "context": CONTEXT, "cases": semantics()}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    errors = sum("error" in c for c in cases)
    print(f"{len(templates)} templates x {len(CONVERSATIONS)} conversations x 2: {len(cases)} cases "
          f"({errors} raise); {len(SEMANTICS)} semantic cases")


if __name__ == "__main__":
    main()
