"""The i-quant files `volga quantize` writes, evaluated by llama.cpp itself.

The demo model is quantized by Volga to each lattice i-quant (iq3_s ...
iq1_s); llama.cpp (node-llama-cpp, when bench/peer/run.sh has installed it
into build/peer) and Volga continue the same prompts greedily. The
continuations must agree token for token, except that they may part at a
near-tie: where they differ, Volga's logit for llama.cpp's token there must
be within 1% (of the largest logit's magnitude) of Volga's largest logit
(llama.cpp rounds activations per 256 values, Volga per 32, so near-ties,
two- or three-way, may break either way). A wrong grid entry, sign or scale
moves logits far more than that.

Two types are also quantized with an importance matrix (made by `volga
imatrix` from the repository's README, not the prompts), which takes the
weighted searches: their files must agree with llama.cpp the same way.

Run with Debian's /usr/bin/python3 (numpy)."""
import json
import os
import subprocess
import tempfile
import unittest

import numpy as np

ROOT = os.environ.get("VOLGA_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
VOLGA = os.environ.get("VOLGA_BIN", os.path.join(ROOT, "build", "bin", "volga"))
LLAMA_CPP = os.path.join(ROOT, "build", "peer", "node_modules", "node-llama-cpp")
DEMO = os.path.join(ROOT, "models", "volga-demo-f16.gguf")
TYPES = ("iq3_s", "iq3_xxs", "iq2_s", "iq2_xs", "iq2_xxs", "iq1_m", "iq1_s")
IMATRIX_TYPES = ("iq2_xxs", "iq1_m")
PROMPTS = ("Once upon a time", "The little dog")
N = 24
TMP = tempfile.mkdtemp(prefix="volga-iq-")


def run(*args):
    p = subprocess.run(list(args), capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr))
    return p.stdout


_imatrix = []


def imatrix():
    if not _imatrix:
        out = os.path.join(TMP, "demo-imatrix.gguf")
        run(VOLGA, "imatrix", DEMO, os.path.join(ROOT, "README.md"), "-o", out, "--chunk-size", "128", "--chunks", "6",
            "-t", "2", "-q")
        _imatrix.append(out)
    return _imatrix[0]


@unittest.skipUnless(os.path.exists(LLAMA_CPP), "node-llama-cpp is not in build/peer (bench/peer/run.sh installs it)")
class IQuantsInLlamaCpp(unittest.TestCase):
    def check(self, ty, with_imatrix=False):
        path = os.path.join(TMP, "demo-%s%s.gguf" % (ty, "-imatrix" if with_imatrix else ""))
        if with_imatrix:
            run(VOLGA, "quantize", "-q", "--imatrix", imatrix(), DEMO, path, "--type", ty)
        else:
            run(VOLGA, "quantize", "-q", "--without-imatrix", DEMO, path, "--type", ty)
        for prompt in PROMPTS:
            out = json.loads(run(VOLGA, "run", path, "-p", prompt, "-n", str(N), "--temperature", "0",
                                 "--ignore-eos", "--json", "-t", "1"))
            ours = out["ids"]
            theirs = json.loads(run("node", os.path.join(os.path.dirname(__file__), "llamacpp_greedy.mjs"), LLAMA_CPP,
                                    path, json.dumps(out["prompt_ids"]), str(N)).strip().splitlines()[-1])
            self.assertGreater(len(theirs), 0)
            step = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), None)
            if step is None:
                continue
            npy = os.path.join(TMP, "logits.npy")
            ids = out["prompt_ids"] + ours[:step]
            run(VOLGA, "logits", path, "--ids", ",".join(map(str, ids)), "-o", npy)
            row = np.load(npy)[-1]
            gap = row.max() - row[theirs[step]]
            self.assertLess(gap, 1e-2 * np.abs(row).max(),
                            "%s %r step %d: llama.cpp's token %d is %.4f below Volga's best logit (a clear gap, not a near-tie)"
                            % (ty, prompt, step, theirs[step], gap))
            print("note: %s %r parts from llama.cpp at a near-tie, step %d" % (ty, prompt, step))


def make_case(ty, with_imatrix=False):
    return lambda self: self.check(ty, with_imatrix)


for _ty in TYPES:
    setattr(IQuantsInLlamaCpp, "test_%s" % _ty, make_case(_ty))
for _ty in IMATRIX_TYPES:
    setattr(IQuantsInLlamaCpp, "test_%s_imatrix" % _ty, make_case(_ty, True))

if __name__ == "__main__":
    unittest.main()
