"""`volga quantize` against llama.cpp's own quantizer, llama-quantize.

llama-quantize is built from llama.cpp's source outside this repository (the
project never commits it); these tests run only when VOLGA_LLAMA_QUANTIZE
names that binary, and report SKIPPED otherwise. llama-perplexity is taken
from VOLGA_LLAMA_PERPLEXITY or from beside llama-quantize.

- Mix names are read alike: lower-case names and llama-quantize's aliases
  (q2_k, Q4_K, ...) give the same types per tensor in both tools.
- Same type for every tensor: each named mix, on the demo model and on
  synthetic F16 qwen2, deepseek2 and qwen3moe models, quantized by
  llama-quantize; the types in its file must be those `volga quantize
  --dry-run` announces for the same input and options. Every mix gets the
  same importance matrix on both sides (made by `volga imatrix`; the 1-2-bit
  mixes need one, and some rules depend on whether one is given); on the
  demo model the mixes that need none are compared without one as well.
- Files written by llama-quantize load in Volga: its perplexity of each on a
  text (volga perplexity --llama-compatible, the windows llama-perplexity
  scores) is within 0.5% of llama-perplexity's on the same file, and (when
  bench/peer/run.sh has installed node-llama-cpp) Volga continues a prompt
  greedily with the same tokens as llama.cpp, or parts from it only at a
  near-tie (as e2e.iquants_llamacpp allows).

Run with Debian's /usr/bin/python3 (numpy)."""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

import numpy as np

ROOT = os.environ.get("VOLGA_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
VOLGA = os.environ.get("VOLGA_BIN", os.path.join(ROOT, "build", "bin", "volga"))
SYNTH = os.path.join(os.path.dirname(VOLGA), "volga-synth")
QUANTIZE = os.environ.get("VOLGA_LLAMA_QUANTIZE", "")
PERPLEXITY = os.environ.get("VOLGA_LLAMA_PERPLEXITY",
                            os.path.join(os.path.dirname(QUANTIZE), "llama-perplexity") if QUANTIZE else "")
LLAMA_CPP = os.path.join(ROOT, "build", "peer", "node_modules", "node-llama-cpp")
DEMO = os.path.join(ROOT, "models", "volga-demo-f16.gguf")
TEXT = os.path.join(ROOT, "README.md")  # calibration and evaluation text; any text both engines tokenize alike
TMP = tempfile.mkdtemp(prefix="volga-llq-")
sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))
from gguf_np import GGUF  # noqa: E402  (the independent reader)


def run(*args, check=True):
    p = subprocess.run(list(args), capture_output=True, text=True, errors="replace")
    if check and p.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr[-3000:]))
    return p


def mixes():
    """The named mixes, from volga quantize --help."""
    return re.findall(r"^  ([A-Z0-9_]+): ", run(VOLGA, "quantize", "--help").stdout, re.M)


_models = {}


def model(name):
    """(F16 file, its importance matrix) for the demo or a synthetic architecture."""
    if name not in _models:
        path = DEMO
        chunk = "128"
        if name != "demo":
            path = os.path.join(TMP, "%s-f16.gguf" % name)
            run(SYNTH, "--arch", name, "--type", "f16", "-o", path)
            chunk = "64"
        im = os.path.join(TMP, "%s-imatrix.gguf" % name)
        run(VOLGA, "imatrix", path, TEXT, "-o", im, "--chunk-size", chunk, "--chunks", "8", "-t", "2", "-q")
        _models[name] = (path, im)
    return _models[name]


def announced(path, mix, im):
    """Tensor name -> type from volga quantize --dry-run's per-tensor lines."""
    args = [VOLGA, "quantize", "--dry-run", path, os.path.join(TMP, "never.gguf"), mix]
    args += ["--imatrix", im] if im else ["--without-imatrix"]
    out = {}
    for line in run(*args).stderr.splitlines():
        m = re.match(r"\[\d+/\d+\] (\S+) \[[^\]]*\] ([a-z0-9_]+)(?: -> ([a-z0-9_]+)| \(kept\))", line)
        if m:
            out[m.group(1)] = m.group(3) or m.group(2)
    return out


def llama_quantize(path, mix, im, out):
    args = [QUANTIZE] + (["--imatrix", im] if im else []) + [path, out, mix, "2"]
    run(*args)
    g = GGUF(out)
    return {name: g.tensors[name][0] for name in g.tensors}


@unittest.skipUnless(QUANTIZE and os.path.exists(QUANTIZE),
                     "VOLGA_LLAMA_QUANTIZE does not name a llama-quantize binary (built from llama.cpp's source)")
class SameTypesAsLlamaQuantize(unittest.TestCase):
    def compare(self, name, with_imatrix):
        path, im = model(name)
        bad = []
        for mix in mixes():
            if not with_imatrix and mix.startswith(("IQ1", "IQ2", "IQ3_XXS", "IQ3_XS", "Q2_K_S")):
                continue  # llama-quantize refuses these without an importance matrix
            with self.subTest(model=name, mix=mix, imatrix=with_imatrix):
                out = os.path.join(TMP, "llq-%s-%s.gguf" % (name, mix))
                theirs = llama_quantize(path, mix, im if with_imatrix else None, out)
                ours = announced(path, mix, im if with_imatrix else None)
                os.remove(out)
                self.assertEqual(set(ours), set(theirs))
                diff = {t: (ours[t], theirs[t]) for t in ours if ours[t] != theirs[t]}
                if diff:
                    bad.append((mix, diff))
                self.assertEqual(diff, {}, "tensor: (volga, llama-quantize)")
        print("%s%s: %d mixes compared, %d differ" % (name, " +imatrix" if with_imatrix else "", len(mixes()), len(bad)))

    def test_demo(self):
        self.compare("demo", True)

    def test_demo_without_imatrix(self):
        self.compare("demo", False)

    def test_qwen2(self):
        self.compare("qwen2", True)

    def test_deepseek2(self):
        self.compare("deepseek2", True)

    def test_qwen3moe(self):
        self.compare("qwen3moe", True)

    def test_names_in_any_case_and_aliases(self):
        """llama-quantize reads its type argument as a mix in any case, with
        Q3_K/Q4_K/Q5_K standing for the _M mixes; volga quantize must read
        the same names the same way (so "q2_k" is the mix, not q2_k everywhere)."""
        path, im = model("demo")
        for name in ("q2_k", "q3_k", "Q4_K", "q5_k", "iq2_s", "q4_0", "q4_k_s"):
            with self.subTest(name=name):
                out = os.path.join(TMP, "llq-name-%s.gguf" % name)
                theirs = llama_quantize(path, name, im, out)
                os.remove(out)
                self.assertEqual(announced(path, name, im), theirs)


def llama_perplexity(path, ctx, chunks):
    # llama-perplexity's log thread sometimes exits before printing its last lines
    # (seen on the busy machine): the last chunk's running figure is the same number,
    # else run it again.
    for _ in range(3):
        p = run(PERPLEXITY, "-m", path, "-f", TEXT, "-c", str(ctx), "--chunks", str(chunks), "-b", str(ctx), "-t", "2")
        m = re.search(r"Final estimate: PPL = ([0-9.]+)", p.stdout + p.stderr)
        m = m or re.search(r"\[%d\]([0-9.]+),\s*$" % chunks, p.stdout)
        if m:
            return float(m.group(1))
    raise AssertionError("no final estimate from llama-perplexity: " + (p.stdout + p.stderr)[-2000:])


@unittest.skipUnless(QUANTIZE and os.path.exists(QUANTIZE),
                     "VOLGA_LLAMA_QUANTIZE does not name a llama-quantize binary (built from llama.cpp's source)")
class LlamaQuantizeFilesInVolga(unittest.TestCase):
    MIXES = ("Q4_K_M", "Q3_K_M", "IQ4_XS", "Q2_K", "IQ2_XXS", "IQ1_M")

    def test_perplexity_and_greedy_tokens(self):
        path, im = model("demo")
        # Both engines score the same windows (--llama-compatible); their kernels round
        # activations differently (llama.cpp per 256 values for k-quants, Volga per 32),
        # hence 0.5% rather than the 0.1% of e2e.llama_perplexity on F16/Q8_0 files.
        for mix in self.MIXES:
            with self.subTest(mix=mix):
                out = os.path.join(TMP, "llq-eval-%s.gguf" % mix)
                llama_quantize(path, mix, im, out)
                ours = json.loads(run(VOLGA, "perplexity", out, TEXT, "--ctx-size", "256", "--max-windows", "12",
                                      "--llama-compatible", "--json", "-q", "-t", "2").stdout)
                if PERPLEXITY and os.path.exists(PERPLEXITY):
                    theirs = llama_perplexity(out, 256, ours["windows"])
                    print("%s: perplexity volga %.4f, llama-perplexity %.4f (%+.3f%%)" % (
                        mix, ours["perplexity"], theirs, 100 * (ours["perplexity"] / theirs - 1)))
                    self.assertLess(abs(ours["perplexity"] / theirs - 1), 0.005, mix)
                if os.path.exists(LLAMA_CPP):
                    prompt = "The old man said to the sea"
                    got = json.loads(run(VOLGA, "run", out, "-p", prompt, "-n", "16", "--temperature", "0",
                                         "--json", "-t", "2").stdout)
                    script = os.path.join(ROOT, "tests", "e2e", "llamacpp_greedy.mjs")
                    want = json.loads(run("node", script, LLAMA_CPP, out, ",".join(map(str, got["prompt_ids"])),
                                          "16").stdout.strip().splitlines()[-1])
                    self.check_greedy(out, got, want, mix)

    def check_greedy(self, path, got, want, mix):
        """Token for token, except that the two engines may part at a near-tie: where
        they differ, llama.cpp's token must be in Volga's top 2 there, within 1% of the
        largest logit (llama.cpp rounds activations per 256 values for k-quants, Volga
        per 32), as in e2e.iquants_llamacpp."""
        ours = got["ids"][:-1] if got["stopped"] else got["ids"]
        step = next((i for i, (a, b) in enumerate(zip(ours, want)) if a != b), None)
        if step is None:
            self.assertEqual(len(ours), len(want), mix)
            return
        npy = os.path.join(TMP, "logits.npy")
        run(VOLGA, "logits", path, "--ids", ",".join(map(str, got["prompt_ids"] + ours[:step])), "-o", npy)
        row = np.load(npy)[-1]
        top2 = np.sort(row)[-2:]
        self.assertIn(want[step], np.argsort(row)[-2:], "%s step %d: llama.cpp's token is not Volga's top 2" % (mix, step))
        self.assertLess(top2[1] - top2[0], 1e-2 * np.abs(row).max(), "%s step %d: parted at a clear gap" % (mix, step))
        print("note: %s parts from llama.cpp at a near-tie, step %d" % (mix, step))


if __name__ == "__main__":
    if not (QUANTIZE and os.access(QUANTIZE, os.X_OK)):
        # ctest reports exit 77 as skipped, not passed.
        print("SKIPPED: VOLGA_LLAMA_QUANTIZE does not name a llama-quantize binary (built from llama.cpp's source)")
        sys.exit(77)
    unittest.main()
