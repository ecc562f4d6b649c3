#!/usr/bin/env python3
"""gen_chat_fixture_qwen3.py - writes tests/data/chat/qwen3.json, the Qwen3 chat template cases.

Not run by the build or the tests: its output is committed. Every expected string is rendered by
Jinja2 from the real template text in tests/data/chat/Qwen-Qwen3-0.6B.jinja (Qwen/Qwen3-0.6B's
tokenizer_config.json chat_template, as llama.cpp keeps it in models/templates/), in an
environment set up the way Hugging Face transformers' apply_chat_template sets up its own
(sandboxed, trim_blocks, lstrip_blocks, loopcontrols). test_chat_template then checks that
edgelm's C rendering gives the same bytes, without any Jinja at test time.

Usage (needs python3-jinja2):
    python3 tools/gen_chat_fixture_qwen3.py > tests/data/chat/qwen3.json
"""
import json
import pathlib
import sys

import jinja2
import jinja2.ext
import jinja2.sandbox

ROOT = pathlib.Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "tests" / "data" / "chat" / "Qwen-Qwen3-0.6B.jinja"
SOURCE = ("Qwen/Qwen3-0.6B tokenizer_config.json chat_template (llama.cpp "
          "models/templates/Qwen-Qwen3-0.6B.jinja); expected rendered by Jinja2 with "
          "tools/gen_chat_fixture_qwen3.py (not run by the tests)")
EOS = "<|im_end|>"  # Qwen3's eos_token

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
SUM_TURN = {"role": "assistant",
            "content": "<think>\nThe user wants 2+2.\nThat is 4.\n</think>\n\n2+2 = 4."}
TANGLED = {"role": "assistant", "content": "<think>x<think>\n\ny\n</think>\nmid</think>\n\nend"}

# (name, messages, add_generation_prompt, enable_thinking, template override or None)
CASES = [
    ("system and user, thinking off (the default): an empty think block opens the answer",
     [SYSTEM, {"role": "user", "content": "Hello"}], True, False, None),
    ("system and user, thinking on: the assistant's turn is left open for <think>",
     [SYSTEM, {"role": "user", "content": "Hello"}], True, True, None),
    ("user only, no system turn, thinking off",
     [{"role": "user", "content": "  What is 2+2? \n"}], True, False, None),
    ("multi-turn, thinking off: the reasoning of the turn before the last user query is dropped",
     [SYSTEM, {"role": "user", "content": "What is 2+2?"}, SUM_TURN,
      {"role": "user", "content": "And 3+3?"}], True, False, None),
    ("multi-turn, thinking on: the same history, the turn left open",
     [SYSTEM, {"role": "user", "content": "What is 2+2?"}, SUM_TURN,
      {"role": "user", "content": "And 3+3?"}], True, True, None),
    ("several earlier turns: every one before the last user query loses its reasoning; "
     "one without </think> is kept as written",
     [{"role": "user", "content": "a"},
      {"role": "assistant", "content": "\n\n<think>r1</think>\n\nA1\n"},
      {"role": "user", "content": "b"},
      {"role": "assistant", "content": "\nA2 (no reasoning)"},
      {"role": "user", "content": "c"},
      {"role": "assistant", "content": "no opening tag</think>A3"},
      {"role": "user", "content": "d"}], True, False, None),
    ("several </think> and <think>: the answer is after the last </think>, the reasoning "
     "(kept after the last user query) between the last <think> and the first </think>",
     [{"role": "user", "content": "q"}, TANGLED, {"role": "user", "content": "q2"}, TANGLED,
      {"role": "assistant", "content": "ok"}], False, False, None),
    ("turns after the last user query keep their reasoning; the last one always gets a think "
     "block (empty when it had none); no generation prompt",
     [SYSTEM, {"role": "user", "content": "Hi"},
      {"role": "assistant", "content": "<think>\nGreet back.\n</think>\n\nHello!"},
      {"role": "assistant", "content": "\nHow can I help?"}], False, False, None),
    ("after the last user query a turn without reasoning that is not the last stays plain",
     [{"role": "user", "content": "Hi"},
      {"role": "assistant", "content": "Hello!"},
      {"role": "assistant", "content": "<think>\n\n</think>\n\nAnything else?"}], False, True,
     None),
    ("a system message that is not the first is an ordinary turn; an unknown role renders "
     "nothing",
     [{"role": "user", "content": "u1"},
      {"role": "system", "content": "Now answer in French."},
      {"role": "developer", "content": "dropped by the template"},
      {"role": "user", "content": "u2"}], True, False, None),
    ("tool results: consecutive tool messages share one user turn, and a user message that is "
     "a tool response is not a query",
     [SYSTEM, {"role": "user", "content": "Weather in Paris?"},
      {"role": "assistant", "content": "<think>\nAsk the tool.\n</think>\n\nChecking."},
      {"role": "tool", "content": "18C"},
      {"role": "tool", "content": "sunny"},
      {"role": "user", "content": "<tool_response>\nwind 5 km/h\n</tool_response>"},
      {"role": "assistant", "content": "<think>\nAll there.\n</think>\n\nDone."}], True, False,
     None),
    ("the template named only by its family",
     [SYSTEM, {"role": "user", "content": "Hello"}], True, False, "qwen3"),
]


def environment():
    """Like transformers' _compile_jinja_template: what the template may rely on."""
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env.filters["tojson"] = lambda x, **kw: json.dumps(x, ensure_ascii=False, **kw)
    env.globals["raise_exception"] = raise_exception
    return env


def main():
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    template = environment().from_string(text)
    cases = []
    for name, messages, add_prompt, thinking, override in CASES:
        expected = template.render(messages=messages, add_generation_prompt=add_prompt,
                                   enable_thinking=thinking)
        if thinking:
            # enable_thinking left undefined is the template's other "on"
            undefined = template.render(messages=messages, add_generation_prompt=add_prompt)
            assert undefined == expected, name
        cases.append({
            "name": name,
            "source": SOURCE,
            "template": override if override is not None else text,
            "eos": EOS,
            "family": "qwen3",
            "recognized": True,
            "add_assistant": add_prompt,
            "enable_thinking": thinking,
            "messages": messages,
            "expected": expected,
        })
    root = {
        "family": "qwen3",
        "format": "each case: template text (tokenizer.chat_template), the model's EOS text, "
                  "messages, enable_thinking -> expected family and rendering",
        "cases": cases,
    }
    json.dump(root, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
