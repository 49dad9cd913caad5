"""Chat templates: `volga template` must render every real template in
../shared/testdata/templates byte for byte as Python's jinja2 does under
Hugging Face's settings (hf_render.py), over many conversations; Jinja feature
snippets are compared the same way. Errors (templates that raise, malformed
templates) must fail cleanly with a position.

Run through ctest (VOLGA_BIN, VOLGA_ROOT) with Debian's /usr/bin/python3 (python3-jinja2)."""
import glob
import json
import os
import subprocess
import tempfile
import unittest

import jinja2

import hf_render

ROOT = os.environ.get("VOLGA_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
VOLGA = os.environ.get("VOLGA_BIN", os.path.join(ROOT, "build", "bin", "volga"))
TEMPLATES = os.path.join(ROOT, "..", "shared", "testdata", "templates")
TMP = tempfile.mkdtemp(prefix="volga-tmpl-")

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Текущая погода в городе.\nReturns the temperature.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "Город, напр. Москва"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
                "days": {"type": "integer", "minimum": 1, "maximum": 14, "default": 1},
                "threshold": {"type": "number", "default": 0.5},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
                "verbose": {"type": "boolean", "default": False},
            },
            "required": ["city"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search_docs",
        "description": "Recherche dans la base documentaire interne 内部文档",
        "parameters": {"type": "object", "properties": {
            "query": {"type": "string"},
            "filters": {"type": "object", "additionalProperties": True},
            "limit": {"type": "integer", "enum": [5, 10, 20]},
        }, "required": ["query"]},
    },
}
TOOLS = [WEATHER_TOOL, SEARCH_TOOL]


def tool_call(call_id, name, arguments):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


CONVERSATIONS = {
    "single_user": [{"role": "user", "content": "Привет! Как дела?"}],
    "system_multiturn": [
        {"role": "system", "content": "Ты — полезный ассистент банка. Отвечай кратко."},
        {"role": "user", "content": "Какой курс юаня сегодня?"},
        {"role": "assistant", "content": "Я не имею доступа к актуальным курсам. 我无法访问实时汇率。"},
        {"role": "user", "content": "Traduis en français : « bonjour, où est la gare ? »"},
        {"role": "assistant", "content": "Bonjour, où se trouve la gare ?"},
        {"role": "user", "content": "请用中文回答：北京的天气怎么样？"},
    ],
    "whitespace_and_quotes": [
        {"role": "system", "content": "  Leading and trailing spaces \n\n"},
        {"role": "user", "content": "Quote \"double\" and 'single', back\\slash, tab\tend\n  indented line\n"},
        {"role": "assistant", "content": "\n\nOK 👍 — ёлка, 你好\n"},
        {"role": "user", "content": "{{ not a template }} {% neither %} <|im_end|>"},
    ],
    "tools": [
        {"role": "system", "content": "You can call tools."},
        {"role": "user", "content": "Какая погода в Москве на 3 дня?"},
        {"role": "assistant", "content": "", "tool_calls": [
            tool_call("call00001", "get_weather", {"city": "Москва", "days": 3, "tags": ["rain", "wind"]})]},
        {"role": "tool", "tool_call_id": "call00001", "name": "get_weather",
         "content": "{\"temperature\": -5.5, \"conditions\": \"снег\"}"},
        {"role": "assistant", "content": "В Москве −5,5 °C и снег."},
        {"role": "user", "content": "Merci. Et à Pékin ?"},
    ],
    "tools_no_system": [
        {"role": "user", "content": "Find the quarterly report"},
        {"role": "assistant", "content": "Let me search.", "tool_calls": [
            tool_call("call00002", "search_docs", {"query": "quarterly report", "limit": 5,
                                                   "filters": {"year": 2025, "lang": "ru"}})]},
        {"role": "tool", "tool_call_id": "call00002", "content": "Found 2 documents."},
    ],
    "reasoning": [
        {"role": "user", "content": "Сколько будет 17 * 23?"},
        {"role": "assistant", "content": "<think>\n17*20=340, 17*3=51.\n</think>\n\n17 × 23 = 391.",
         "reasoning_content": "17*20=340, 17*3=51, total 391."},
        {"role": "user", "content": "А 391 / 17?"},
    ],
    "reasoning_in_content_only": [
        {"role": "system", "content": "Think step by step."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "<think>easy</think>4"},
        {"role": "user", "content": "3+3?"},
    ],
    "content_parts": [
        {"role": "user", "content": [{"type": "text", "text": "Опиши: "}, {"type": "text", "text": "日落 sunset"}]},
    ],
    "not_alternating": [
        {"role": "user", "content": "one"},
        {"role": "user", "content": "two"},
    ],
    "starts_with_assistant": [
        {"role": "assistant", "content": "Hello, I am an assistant."},
        {"role": "user", "content": "Hi"},
    ],
}
# Extra variables some templates read.
VARIANTS = [
    ("plain", {}),
    ("no_thinking", {"enable_thinking": False}),
    ("thinking", {"enable_thinking": True, "thinking": True}),
]
SPECIAL = {"bos_token": "<s>", "eos_token": "</s>"}


def run(args, stdin=None):
    p = subprocess.run(args, capture_output=True, input=stdin)
    return p.returncode, p.stdout.decode("utf-8"), p.stderr.decode("utf-8", "replace")


def write_json(name, obj):
    path = os.path.join(TMP, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False)
    return path


def volga_render(template_path, messages, tools, add_generation_prompt, extra):
    args = [VOLGA, "template", template_path, "--messages", write_json("messages.json", messages),
            "--bos-token", SPECIAL["bos_token"], "--eos-token", SPECIAL["eos_token"]]
    if tools is not None:
        args += ["--tools", write_json("tools.json", tools)]
    if add_generation_prompt:
        args.append("--add-generation-prompt")
    for k, v in extra.items():
        args += ["--var", "%s=%s" % (k, json.dumps(v, ensure_ascii=False))]
    return run(args)


class RealTemplates(unittest.TestCase):
    def test_templates_present(self):
        self.assertGreaterEqual(len(glob.glob(os.path.join(TEMPLATES, "*.jinja"))), 10)

    def compare(self, path, conv_name, messages, tools, agp, extra):
        with open(path, encoding="utf-8") as f:
            source = f.read()
        try:
            expected = hf_render.render(source, messages, tools=tools, add_generation_prompt=agp, **SPECIAL, **extra)
            py_error = None
        except Exception as e:  # raise_exception, or a TypeError etc. from the render
            expected, py_error = None, str(e)
        rc, out, err = volga_render(path, messages, tools, agp, extra)
        where = "%s / %s / tools=%s / agp=%s / %s" % (os.path.basename(path), conv_name, tools is not None, agp, extra)
        if py_error is not None:
            self.assertNotEqual(rc, 0, "%s: jinja2 raised %r but volga rendered" % (where, py_error))
            self.assertIn("template", err, where)
            self.assertNotIn("Traceback", err)
            return "error"
        self.assertEqual(rc, 0, "%s: volga failed: %s" % (where, err))
        self.assertEqual(out, expected, where)
        return "ok"

    def test_every_template_matches_jinja2(self):
        counts = {"ok": 0, "error": 0}
        for path in sorted(glob.glob(os.path.join(TEMPLATES, "*.jinja"))):
            with self.subTest(template=os.path.basename(path)):
                for conv_name, messages in CONVERSATIONS.items():
                    for tools in (None, TOOLS):
                        for agp in (False, True):
                            for _, extra in VARIANTS:
                                counts[self.compare(path, conv_name, messages, tools, agp, extra)] += 1
        # Most cases must render (errors are expected only for unsupported conversations).
        self.assertGreater(counts["ok"], 4 * counts["error"], counts)
        print("\nrendered %(ok)d cases identically, %(error)d raised in both" % counts)


# Feature snippets: (template, variables). Each is rendered by jinja2 and Volga.
SNIPPETS = [
    ("{{ 'a' ~ 1 ~ none ~ true ~ 1.5 ~ [1, 'x'] ~ {'k': 'v'} }}", {}),
    ("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1e20 }} {{ 0.1 + 0.2 }} {{ 1e-5 }} {{ 3.0 }}", {}),
    ("{% for x in xs %}{{ loop.index }}/{{ loop.length }}{{ ',' if not loop.last }}{% else %}empty{% endfor %}", {"xs": [1, 2, 3]}),
    ("{% for x in xs %}x{% else %}empty{% endfor %}", {"xs": []}),
    ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}", {"d": {"b": 1, "a": [2]}}),
    ("{% for x in xs if x is odd %}{{ x }}{{ loop.index0 }}{% endfor %}", {"xs": [1, 2, 3, 4, 5]}),
    ("{% for x in xs %}{% if x == 3 %}{% break %}{% endif %}{% if x == 1 %}{% continue %}{% endif %}{{ x }}{% endfor %}", {"xs": [0, 1, 2, 3, 4]}),
    ("{% for x in xs %}{{ loop.previtem }}|{{ loop.nextitem }}|{{ loop.cycle('a', 'b') }} {% endfor %}", {"xs": [1, 2, 3]}),
    ("{% set x = 1 %}{% for i in range(3) %}{% set x = x + i %}{{ x }}{% endfor %}{{ x }}", {}),
    ("{% set ns = namespace(total=0) %}{% for i in range(5) %}{% set ns.total = ns.total + i %}{% endfor %}{{ ns.total }}", {}),
    ("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Мир') }} {{ greet('you', punct='?') }}", {}),
    ("{% macro wrap() %}[{{ caller() }}]{% endmacro %}{% call wrap() %}inner {{ 1 + 1 }}{% endcall %}", {}),
    ("{% set block %}  captured {{ 42 }}  {% endset %}<{{ block }}>", {}),
    ("{{ s[1:4] }} {{ s[::-1] }} {{ s[-3:] }} {{ xs[1:] }} {{ xs[::2] }} {{ s[0] }} {{ s[-1] }}", {"s": "Привет, мир", "xs": [1, 2, 3, 4, 5]}),
    ("{{ s | length }} {{ s | upper }} {{ s | lower }} {{ s | title }} {{ s | capitalize }}", {"s": "héllo wörld ЁЖ"}),
    ("{{ '  x  ' | trim }}|{{ 'xxaxx' | trim('x') }}|{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ 'a\\nb\\n'.rstrip('\\n') }}", {"s": " \t pad \n"}),
    ("{{ s.split() }} {{ s.split(',') }} {{ s.split(',', 1) }} {{ s.rsplit(',', 1) }} {{ 'a b'.split(' ') }}", {"s": "a,b , c,d"}),
    ("{{ s.startswith('ab') }} {{ s.endswith(('x', 'cd')) }} {{ s.replace('b', 'B') }} {{ s.find('c') }} {{ s.count('b') }} {{ s.upper() }}", {"s": "abcdb"}),
    ("{{ xs | join(', ') }} {{ xs | first }} {{ xs | last }} {{ xs | length }} {{ xs | reverse | list }} {{ xs | sort }} {{ xs | unique | list }} {{ xs | sum }} {{ xs | min }} {{ xs | max }}", {"xs": [3, 1, 2, 3]}),
    ("{{ users | selectattr('active') | map(attribute='name') | join(',') }} {{ users | rejectattr('role', 'equalto', 'admin') | list | length }} {{ users | map(attribute='name') | list }}", {"users": [{"name": "a", "active": True, "role": "admin"}, {"name": "b", "active": False, "role": "user"}]}),
    ("{{ xs | select('even') | list }} {{ xs | reject('odd') | list }} {{ xs | map('string') | join }} {{ ['a','b'] | map('upper') | list }}", {"xs": [1, 2, 3, 4]}),
    ("{{ d | tojson }} {{ d | tojson(indent=2) }} {{ xs | tojson }} {{ 'é\"\\\\\\n' | tojson }} {{ d | tojson(sort_keys=true) }}", {"d": {"z": 1, "a": [1.5, None, True, "ё"], "m": {}}, "xs": []}),
    ("{{ d | tojson(ensure_ascii=true) }} {{ d | tojson(separators=(',', ':')) }}", {"d": {"k": "中文 😀", "n": [1, 2]}}),
    ("{{ x | default('dflt') }} {{ none | default('d2') }} {{ '' | default('d3', true) }} {{ y | default(5) }}", {"y": 0}),
    ("{{ x is defined }} {{ x is undefined }} {{ none is none }} {{ 'a' is string }} {{ 1 is number }} {{ 1 is integer }} {{ 1.0 is float }} {{ d is mapping }} {{ xs is sequence }} {{ 'a' is sequence }} {{ d is iterable }} {{ 1 is iterable }} {{ true is boolean }} {{ false is false }} {{ 4 is divisibleby 2 }} {{ 'b' is in 'abc' }} {{ 3 is in xs }}", {"d": {}, "xs": [1, 2, 3]}),
    ("{{ 1 if x else 2 }} {{ 'yes' if y }} {{ (1 if y) is defined }} {{ not x and y or 'z' }} {{ x or y }} {{ y and 0 }}", {"x": 0, "y": "v"}),
    ("{{ 'abc' in 'xabcx' }} {{ 'k' in d }} {{ 2 not in xs }} {{ xs == [1, 2] }} {{ d != {} }} {{ 1 == 1.0 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }}", {"d": {"k": 1}, "xs": [1, 2]}),
    ("{{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 'fb') }} {{ d['a'] }} {{ d.a }} {{ d.keys() | list }} {{ d.values() | list }} {{ d | items | list }} {{ d.missing }}|", {"d": {"a": 1, "b": "two"}}),
    ("{{ '%s and %s' | format('a', 1) }} {{ 'x' * 3 }} {{ [1] * 2 }} {{ 3 | abs }} {{ -3.7 | abs }} {{ 2.567 | round(2) }} {{ '12' | int + 1 }} {{ '1.5' | float }} {{ 'zz' | int }} {{ 42 | string }}", {}),
    ("{{ text | indent(2) }}|{{ text | indent(4, first=true) }}|{{ text | wordcount }}", {"text": "line one\n\nline three\n"}),
    ("{{ {'a': 1, 'b': 2} | dictsort }} {{ xs | batch(2) | list }} {{ xs | sort(reverse=true) }} {{ names | sort }} {{ names | sort(case_sensitive=true) }}", {"xs": [1, 2, 3], "names": ["b", "A", "c"]}),
    ("{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a }}", {}),
    ("{% filter upper %}shout {{ 'this' }}{% endfilter %}", {}),
    ("{% raw %}{{ not rendered }} {% if %}{% endraw %}", {}),
    ("a\n  {% if true %}\n    b\n  {% endif %}\n  c {# comment #}\n  {#- stripped -#}  d\n{{- ' e ' -}}\n  f {%+ if true %}g{% endif %}", {}),
    ("{%- for m in messages -%}\n  {{ m.role }}: {{ m.content }}\n{% endfor %}", {"messages": [{"role": "user", "content": "hi"}]}),
    ("{{ 'caf\\u00e9' }} {{ \"it's\" }} {{ 'say \"hi\"' }} {{ [\"it's\", 'a\\nb'] }} {{ '\\x41' }}", {}),
    ("{% set a, b = [1, 2] %}{{ a }}{{ b }} {% set t = 1, 2 %}{{ t }} {{ (1, 2) }} {{ () }}", {}),
    ("{% generation %}kept {{ 1 }}{% endgeneration %}", {}),
    ("{% macro f(a, b) %}{{ a }}|{{ b }}|{{ varargs }}|{{ kwargs }}{% endmacro %}{{ f(1) }} {{ f(1, 2, 3, k=4) }}", {}),
    ("{% macro rec(n) %}{{ n }}{% if n > 0 %}{{ rec(n - 1) }}{% endif %}{% endmacro %}{{ rec(5) }}", {}),
    ("{{ xs[10] }}|{{ xs[-1] }}|{{ d['no'] is defined }}|{{ none.attr is defined }}|{{ 'abc'.nomethod is defined }}", {"xs": [1, 2], "d": {}}),
    ("{{ 'Ёлка'.lower() }} {{ 'straße'.upper() }} {{ 'ǅ' | lower }} {{ '日本'.title() }} {{ 'abc'.isalpha() }} {{ '12'.isdigit() }} {{ ' '.isspace() }}", {}),
    ("{{ 1 < 2 < 3 }} {{ -x }} {{ +x }} {{ x - 1.5 }} {{ 10 / 4 }} {{ 9 // 2.0 }} {{ 2 ** -1 }} {{ 1_000 }}", {"x": 3}),
    ("{{ none }} {{ true }} {{ True }} {{ [none, false, 1.0, -0.0, 1e100, 12345678901234567.0] }}", {}),
]


class Snippets(unittest.TestCase):
    def test_snippets_match_jinja2(self):
        env = hf_render.environment()
        for i, (source, variables) in enumerate(SNIPPETS):
            with self.subTest(snippet=source):
                expected = env.from_string(source).render(**variables)
                path = os.path.join(TMP, "snippet%d.jinja" % i)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(source)
                args = [VOLGA, "template", path, "--messages", write_json("empty.json", [])]
                for k, v in variables.items():
                    args += ["--var", "%s=%s" % (k, json.dumps(v, ensure_ascii=False))]
                rc, out, err = run(args)
                self.assertEqual(rc, 0, err)
                self.assertEqual(out, expected)


# Templates that must fail, and the line each error must point at.
BAD = [
    ("{% if x %}unclosed", 1, "endif"),
    ("line1\n{{ x + }}", 2, "unexpected"),
    ("{% for %}", 1, "name"),
    ("ok\n\n{% endfor %}", 3, "endfor"),
    ("{{ 'unterminated }}", 1, "unterminated"),
    ("{% unknowntag %}", 1, "unknowntag"),
    ("{{ x | nosuchfilter }}", 1, "nosuchfilter"),
    ("a\n{{ raise_exception('Only user and assistant roles are supported!') }}", 2, "Only user and assistant"),
    ("{{ 1 / 0 }}", 1, "division by zero"),
    ("{{ undefined_thing.attr }}", 1, "undefined_thing"),
    ("{{ 'a' + 1 }}", 1, "unsupported"),
    ("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", 1, "recursion"),
    ("{{ xs.append(1) }}", 1, "not allowed"),
    ("{{ (((( }}", 1, ""),
    ("{% set ns = 1 %}{% set ns.a = 2 %}", 1, "namespace"),
]


class Errors(unittest.TestCase):
    def test_bad_templates_fail_with_position(self):
        for i, (source, line, needle) in enumerate(BAD):
            with self.subTest(template=source):
                with self.assertRaises(Exception):  # the oracle agrees it is bad
                    hf_render.environment().from_string(source).render(xs=[])
                path = os.path.join(TMP, "bad%d.jinja" % i)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(source)
                rc, out, err = run([VOLGA, "template", path, "--messages", write_json("e.json", []),
                                    "--var", "xs=[]"])
                self.assertEqual(rc, 1, err)
                self.assertIn("template line %d" % line, err)
                self.assertIn(needle, err)
                self.assertNotIn("Traceback", err)
                self.assertEqual(out, "")

    def test_bad_inputs(self):
        path = os.path.join(TEMPLATES, "Qwen-Qwen3-0.6B.jinja")
        bad_json = os.path.join(TMP, "bad.json")
        with open(bad_json, "w") as f:
            f.write("[{\"role\": ")
        rc, _, err = run([VOLGA, "template", path, "--messages", bad_json])
        self.assertEqual(rc, 1)
        self.assertIn("not valid JSON", err)
        rc, _, err = run([VOLGA, "template", path, "--messages", write_json("obj.json", {"role": "user"})])
        self.assertEqual(rc, 1)
        self.assertIn("messages must be", err)
        rc, _, err = run([VOLGA, "template", path, "--messages", write_json("m.json", []), "--var", "x=notjson"])
        self.assertEqual(rc, 1)
        self.assertIn("--var", err)


if __name__ == "__main__":
    unittest.main()
