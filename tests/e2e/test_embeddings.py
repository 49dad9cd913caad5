"""Embeddings and reranking from outside: `volga embed` and `volga serve`'s
/v1/embeddings and /v1/rerank against independent oracles — the NumPy float64
reference (tools/reference/embed.py), llama.cpp itself (node-llama-cpp, when
bench/peer/run.sh has installed it into build/peer) and the official `openai`
npm client.

Models are synthetic (volga-synth): a BGE-shaped bert encoder with the real
bge WordPiece vocabulary read from ../shared/testdata at test time, a
cross-encoder reranker, and qwen3 with pooling last (Qwen3-Embedding style).

Run through ctest (VOLGA_BIN, VOLGA_SYNTH, VOLGA_ROOT) with /usr/bin/python3."""
import base64
import json
import os
import struct
import subprocess
import sys
import tempfile
import threading
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server import ServerProcess, VOLGA, SYNTH, ROOT  # noqa: E402

TMP = tempfile.mkdtemp(prefix="volga-embed-")
REFERENCE = os.path.join(ROOT, "tools", "reference", "embed.py")
BGE_VOCAB = os.path.join(ROOT, "..", "shared", "testdata", "vocab", "ggml-vocab-bert-bge.gguf")
LLAMA_CPP = os.path.join(ROOT, "build", "peer", "node_modules", "node-llama-cpp")
LLAMA_EMBED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "llamacpp_embed.mjs")
EMBED_CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "openai_embed_client.mjs")

TEXTS = ["The quick brown fox jumps over the lazy dog.", "Москва стоит на берегу реки.",
         "今天天气很好，我们去公园散步。", "Bonjour le monde, ceci est un petit test du modèle.", "a"]


def synth(name, *args):
    path = os.path.join(TMP, name)
    if not os.path.exists(path):
        subprocess.run([SYNTH, "-q", "-o", path, *args], check=True)
    return path


def bert_model(*extra, name="bert.gguf"):
    if not os.path.exists(BGE_VOCAB):
        raise unittest.SkipTest("../shared/testdata/vocab/ggml-vocab-bert-bge.gguf is missing")
    return synth(name, "--arch", "bert", "--vocab-gguf", BGE_VOCAB, *extra)


def volga_embed(model, *args, env=None):
    p = subprocess.run([VOLGA, "embed", model, "--json", "-t", "2", *args], capture_output=True, env=env)
    if p.returncode != 0:
        raise AssertionError("volga embed failed: " + p.stderr.decode())
    return json.loads(p.stdout)


def reference(model, inputs, *args):
    out = subprocess.run(["/usr/bin/python3", REFERENCE, model, "--inputs", json.dumps(inputs), *args],
                         capture_output=True, check=True).stdout
    return json.loads(out)


def cosine(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


class ReferenceAgreement(unittest.TestCase):
    """Volga's vectors against the NumPy float64 forward pass, every pooling."""

    def check(self, model, pooling=None, tol=1e-5, texts=TEXTS, abs_tol=None):
        args = [*texts] + (["--pooling", pooling] if pooling else [])
        got = volga_embed(model, *args)
        ref = reference(model, got["tokens"], *(["--pooling", pooling] if pooling else []))
        self.assertEqual(len(got["embeddings"]), len(texts))
        for a, b, ids in zip(got["embeddings"], ref["embeddings"], got["tokens"]):
            self.assertEqual(len(a), len(b))
            self.assertGreater(cosine(a, b), 1 - tol, ids)
            self.assertLess(float(np.abs(np.asarray(a) - np.asarray(b)).max()), abs_tol or tol, ids)
            if pooling != "none":
                self.assertAlmostEqual(float(np.linalg.norm(a)), 1.0, places=5)
        return got

    def test_bert_cls_is_the_files_pooling(self):
        got = self.check(bert_model())
        self.assertEqual(got["pooling"], "cls")
        # [CLS] ... [SEP] from the bge vocabulary.
        self.assertEqual(got["tokens"][4], [101, 1037, 102])

    def test_bert_mean_last_none(self):
        for pooling in ("mean", "last", "none"):
            with self.subTest(pooling=pooling):
                self.check(bert_model(), pooling)

    def test_bert_quantized_q8_0(self):
        # The reference multiplies the dequantized weights in float64; Volga's
        # integer products also round the activations to 8 bits.
        self.check(bert_model("--type", "q8_0", name="bert-q8.gguf"), tol=1e-4, abs_tol=5e-3)

    def test_bert_bge_small_shape(self):
        model = bert_model("--shape", "bge-small", "--n-layer", "3", name="bert-small.gguf")
        self.check(model, texts=TEXTS[:2])

    def test_unnormalized(self):
        model = bert_model()
        got = volga_embed(model, "--no-normalize", "--pooling", "mean", TEXTS[0])
        ref = reference(model, got["tokens"], "--pooling", "mean", "--no-normalize")
        self.assertLess(float(np.abs(np.asarray(got["embeddings"][0]) - np.asarray(ref["embeddings"][0])).max()), 1e-5)
        self.assertGreater(abs(float(np.linalg.norm(got["embeddings"][0])) - 1.0), 1e-3)

    def test_qwen3_embedding_pooling_last(self):
        model = synth("qwen3-emb.gguf", "--arch", "qwen3", "--pooling", "last")
        got = self.check(model)
        self.assertEqual(got["pooling"], "last")
        self.check(model, "mean")

    def test_rerank_scores(self):
        model = bert_model("--rerank", name="rerank.gguf")
        got = volga_embed(model, "--rerank", "what is the capital of France?", *TEXTS)
        ref = reference(model, got["tokens"], "--rank")
        np.testing.assert_allclose(got["scores"], ref["scores"], atol=1e-5)
        # WordPiece pair: [CLS] query [SEP] document [SEP].
        first = got["tokens"][4]
        self.assertEqual(first[0], 101)
        self.assertEqual(first[-3:], [102, 1037, 102])


class Invariance(unittest.TestCase):
    """A vector does not depend on its batch or on the kernel set."""

    def test_alone_equals_in_batch(self):
        model = bert_model()
        together = volga_embed(model, *TEXTS)["embeddings"]
        for i, t in enumerate(TEXTS):
            self.assertEqual(volga_embed(model, t)["embeddings"][0], together[i])
        qwen = synth("qwen3-emb.gguf", "--arch", "qwen3", "--pooling", "last")
        together = volga_embed(qwen, *TEXTS)["embeddings"]
        self.assertEqual(volga_embed(qwen, TEXTS[2])["embeddings"][0], together[2])

    def test_every_kernel_set(self):
        """The kernel sets agree to the last bits (as the decoders' logits do
        today: about 1e-5 apart with float products) and, with the integer
        products, whose 8-bit rounding magnifies those differences, to a
        cosine of 1 - 1e-5."""
        for ty in ("f32", "q8_0"):
            model = bert_model("--type", ty, name="bert-%s.gguf" % ty)
            for matmul in ("float", "int8"):
                base = None
                for isa in ("ref", "avx2", "avx512"):
                    p = subprocess.run([VOLGA, "embed", model, "--json", "-t", "2", *TEXTS], capture_output=True,
                                       env=dict(os.environ, VOLGA_ISA=isa, VOLGA_MATMUL=matmul))
                    if p.returncode != 0:
                        self.assertIn("not supported by this CPU", p.stderr.decode())
                        continue
                    got = json.loads(p.stdout)["embeddings"]
                    if base is None:
                        base = got
                        continue
                    exact = matmul == "float" or ty == "f32"
                    for a, b in zip(got, base):
                        self.assertGreater(cosine(a, b), 1 - (1e-9 if exact else 1e-5), "%s %s %s" % (ty, matmul, isa))
                        if exact:
                            self.assertLess(float(np.abs(np.asarray(a) - np.asarray(b)).max()), 1e-5)


@unittest.skipUnless(os.path.exists(LLAMA_CPP), "node-llama-cpp is not in build/peer (bench/peer/run.sh installs it)")
class LlamaCppAgreement(unittest.TestCase):
    """llama.cpp computes GELU with its tanh approximation (through an f16
    table) where Volga and the reference use the exact erf form: the vectors
    agree to about 1e-4, not bit for bit."""

    def llama(self, model, inputs, mode):
        path = os.path.join(TMP, "inputs.json")
        with open(path, "w") as f:
            json.dump(inputs, f)
        p = subprocess.run(["node", LLAMA_EMBED, LLAMA_CPP, model, path, mode], capture_output=True, timeout=300)
        if p.returncode != 0:
            raise AssertionError("node-llama-cpp failed: " + p.stderr.decode()[-2000:])
        return json.loads(p.stdout)

    def test_bert_embeddings(self):
        model = bert_model()
        got = volga_embed(model, *TEXTS)
        theirs = self.llama(model, got["tokens"], "embed")
        for a, b in zip(got["embeddings"], theirs):
            self.assertGreater(cosine(a, b), 0.9999)

    def test_rerank(self):
        model = bert_model("--rerank", name="rerank.gguf")
        got = volga_embed(model, "--rerank", "what is the capital of France?", *TEXTS)
        theirs = self.llama(model, got["tokens"], "rank")
        np.testing.assert_allclose(got["scores"], theirs, atol=1e-2)


class EmbeddingServer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = bert_model()
        cls.server = ServerProcess(model=cls.model)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def post(self, body, path="/v1/embeddings"):
        status, text = self.server.request("POST", path, body)
        return status, json.loads(text)

    def test_matches_cli_for_strings_and_ids(self):
        cli = volga_embed(self.model, *TEXTS)
        status, r = self.post({"input": TEXTS, "model": "anything"})
        self.assertEqual(status, 200, r)
        self.assertEqual(r["object"], "list")
        self.assertEqual([d["index"] for d in r["data"]], list(range(len(TEXTS))))
        for d, v in zip(r["data"], cli["embeddings"]):
            self.assertEqual(d["object"], "embedding")
            np.testing.assert_array_equal(np.float32(d["embedding"]), np.float32(v))
        self.assertEqual(r["usage"]["prompt_tokens"], sum(len(t) for t in cli["tokens"]))
        self.assertEqual(r["usage"]["total_tokens"], r["usage"]["prompt_tokens"])
        # Token ids: one list, and a list of lists.
        status, one = self.post({"input": cli["tokens"][0]})
        self.assertEqual(status, 200, one)
        self.assertEqual(one["data"][0]["embedding"], r["data"][0]["embedding"])
        status, many = self.post({"input": cli["tokens"][:2]})
        self.assertEqual([d["embedding"] for d in many["data"]], [d["embedding"] for d in r["data"][:2]])
        status, single = self.post({"input": TEXTS[1]})
        self.assertEqual(single["data"][0]["embedding"], r["data"][1]["embedding"])

    def test_base64_and_dimensions(self):
        status, f = self.post({"input": TEXTS[0]})
        status, b = self.post({"input": TEXTS[0], "encoding_format": "base64"})
        self.assertEqual(status, 200, b)
        raw = base64.b64decode(b["data"][0]["embedding"])
        decoded = struct.unpack("<%df" % (len(raw) // 4), raw)
        np.testing.assert_array_equal(np.float32(decoded), np.float32(f["data"][0]["embedding"]))
        status, d = self.post({"input": TEXTS[0], "dimensions": 16})
        self.assertEqual(status, 200, d)
        v = np.asarray(d["data"][0]["embedding"])
        self.assertEqual(len(v), 16)
        self.assertAlmostEqual(float(np.linalg.norm(v)), 1.0, places=5)
        full = np.asarray(f["data"][0]["embedding"][:16])
        np.testing.assert_allclose(v, full / np.linalg.norm(full), atol=1e-6)

    def test_bad_requests_are_400_with_json(self):
        long_ids = [101] + [1037] * 600 + [102]
        cases = [({"input": []}, "input"), ({"input": ""}, "input"), ({"input": [[]]}, "input"),
                 ({}, "input"), ({"input": 5}, "input"), ({"input": [{"a": 1}]}, "input"),
                 ({"input": [1, "x"]}, "input"), ({"input": [-1]}, "input"), ({"input": [10 ** 9]}, "input"),
                 ({"input": long_ids}, "input"), ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
                 ({"input": "x", "dimensions": 0}, "dimensions"), ({"input": "x", "dimensions": 100000}, "dimensions"),
                 ({"input": "x", "dimensions": "8"}, "dimensions")]
        for body, param in cases:
            with self.subTest(body=str(body)[:60]):
                status, r = self.post(body)
                self.assertEqual(status, 400, r)
                self.assertEqual(r["error"]["param"], param)
        status, r = self.post({"input": long_ids})
        self.assertIn("602 tokens", r["error"]["message"])
        self.assertIn("512", r["error"]["message"])
        status, text = self.server.request("POST", "/v1/embeddings", raw="[1, 2")
        self.assertEqual(status, 400)
        status, text = self.server.request("POST", "/v1/embeddings", raw="[1, 2]")
        self.assertEqual(status, 400)
        self.assertIn("object", json.loads(text)["error"]["message"])

    def test_generation_and_rerank_refused(self):
        status, r = self.post({"messages": [{"role": "user", "content": "hi"}]}, "/v1/chat/completions")
        self.assertEqual(status, 400)
        self.assertIn("cannot generate", r["error"]["message"])
        status, r = self.post({"query": "q", "documents": ["d"]}, "/v1/rerank")
        self.assertEqual(status, 400)
        self.assertIn("not a reranker", r["error"]["message"])
        self.assertEqual(self.server.request("GET", "/health")[0], 200)

    def test_official_openai_client(self):
        if not os.path.exists(os.path.join(ROOT, "node_modules", "openai")):
            self.skipTest("the openai npm package is missing")
        spec = {"baseURL": "http://127.0.0.1:%d/v1" % self.server.port, "apiKey": "sk-volga-test-key",
                "jobs": [{"model": "m", "input": TEXTS}, {"model": "m", "input": TEXTS[0], "encoding_format": "float"},
                         {"model": "m", "input": TEXTS[0], "dimensions": 32}, {"model": "m", "input": []}]}
        p = subprocess.run(["node", EMBED_CLIENT, json.dumps(spec)], capture_output=True, cwd=ROOT, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        out = json.loads(p.stdout)
        cli = volga_embed(self.model, *TEXTS)["embeddings"]
        # The client asks for base64 by default and decodes it.
        for a, b in zip(out[0]["data"], cli):
            np.testing.assert_array_equal(np.float32(a), np.float32(b))
        self.assertEqual(out[0]["index"], list(range(len(TEXTS))))
        np.testing.assert_array_equal(np.float32(out[1]["data"][0]), np.float32(cli[0]))
        self.assertEqual(len(out[2]["data"][0]), 32)
        self.assertEqual(out[3]["error"]["status"], 400)


class RerankServer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = bert_model("--rerank", name="rerank.gguf")
        cls.server = ServerProcess(model=cls.model)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def post(self, body, path="/v1/rerank"):
        status, text = self.server.request("POST", path, body)
        return status, json.loads(text)

    def test_scores_sorted_and_equal_to_reference(self):
        query = "what is the capital of France?"
        cli = volga_embed(self.model, "--rerank", query, *TEXTS)
        ref = reference(self.model, cli["tokens"], "--rank")["scores"]
        for path in ("/v1/rerank", "/rerank"):
            status, r = self.post({"model": "m", "query": query, "documents": TEXTS}, path)
            self.assertEqual(status, 200, r)
            scores = [x["relevance_score"] for x in r["results"]]
            self.assertEqual(scores, sorted(scores, reverse=True))
            self.assertEqual(sorted(x["index"] for x in r["results"]), list(range(len(TEXTS))))
            for x in r["results"]:
                self.assertAlmostEqual(x["relevance_score"], ref[x["index"]], places=5)
                self.assertNotIn("document", x)
            self.assertEqual(r["usage"]["prompt_tokens"], sum(len(t) for t in cli["tokens"]))
        status, top = self.post({"query": query, "documents": TEXTS, "top_n": 2, "return_documents": True})
        self.assertEqual(len(top["results"]), 2)
        self.assertEqual([x["index"] for x in top["results"]], [x["index"] for x in r["results"][:2]])
        self.assertEqual(top["results"][0]["document"]["text"], TEXTS[top["results"][0]["index"]])
        status, objs = self.post({"query": query, "documents": [{"text": t} for t in TEXTS]})
        self.assertEqual(objs["results"], r["results"])

    def test_bad_requests(self):
        for body, param in [({"query": "q", "documents": []}, "documents"), ({"documents": ["d"]}, "query"),
                            ({"query": "", "documents": ["d"]}, "query"), ({"query": "q", "documents": "d"}, "documents"),
                            ({"query": "q", "documents": [3]}, "documents"),
                            ({"query": "q", "documents": ["d"], "top_n": 0}, "top_n"),
                            ({"query": "q", "documents": ["d"], "return_documents": "yes"}, "return_documents"),
                            ({"query": "q", "documents": ["word " * 600]}, "documents")]:
            with self.subTest(body=str(body)[:60]):
                status, r = self.post(body)
                self.assertEqual(status, 400, r)
                self.assertEqual(r["error"]["param"], param)
        status, r = self.post({"input": "x"}, "/v1/embeddings")
        self.assertEqual(status, 400)
        self.assertIn("reranker", r["error"]["message"])


class GenerativeModelServer(unittest.TestCase):
    """A generative model answers /v1/embeddings only with --embeddings; its
    vectors equal the CLI's and the reference; embeddings requests do not
    change what a concurrent generation produces."""

    def test_refused_without_flag(self):
        model = synth("qwen3-gen.gguf", "--arch", "qwen3")
        server = ServerProcess(model=model)
        try:
            status, text = server.request("POST", "/v1/embeddings", {"input": "hello"})
            self.assertEqual(status, 400)
            self.assertIn("--embeddings", json.loads(text)["error"]["message"])
        finally:
            server.stop()

    def test_with_flag_and_concurrent_generation(self):
        model = synth("qwen3-gen.gguf", "--arch", "qwen3")
        server = ServerProcess("--embeddings", model=model)
        try:
            body = {"prompt": "Hello world", "max_tokens": 24, "temperature": 0}
            status, text = server.request("POST", "/v1/completions", body)
            self.assertEqual(status, 200, text)
            alone = json.loads(text)["choices"][0]["text"]
            results = []

            def generate():
                results.append(server.request("POST", "/v1/completions", body))

            threads = [threading.Thread(target=generate) for _ in range(2)]
            for t in threads:
                t.start()
            for _ in range(4):
                status, text = server.request("POST", "/v1/embeddings", {"input": TEXTS})
                self.assertEqual(status, 200, text)
            for t in threads:
                t.join()
            for status, text in results:
                self.assertEqual(status, 200, text)
                self.assertEqual(json.loads(text)["choices"][0]["text"], alone)
            status, text = server.request("POST", "/v1/embeddings", {"input": TEXTS})
            vectors = [d["embedding"] for d in json.loads(text)["data"]]
            cli = volga_embed(model, "--pooling", "last", *TEXTS)
            for a, b in zip(vectors, cli["embeddings"]):
                np.testing.assert_array_equal(np.float32(a), np.float32(b))
            ref = reference(model, cli["tokens"], "--pooling", "last")
            for a, b in zip(vectors, ref["embeddings"]):
                self.assertGreater(cosine(a, b), 1 - 1e-5)
        finally:
            server.stop()


if __name__ == "__main__":
    unittest.main()
