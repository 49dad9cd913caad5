#!/usr/bin/python3
"""Embedding throughput of `volga embed -t 2`: 64 inputs of 13 token ids and
4 inputs of 512, best of two runs each, minus a one-token run (model load).

    bench/embed_throughput.py MODEL.gguf [VOLGA_BIN]
"""
import subprocess, sys, time, random
model = sys.argv[1]
V = sys.argv[2] if len(sys.argv) > 2 else "build/bin/volga"
random.seed(1)
def ids(n): return ",".join(str(random.randrange(10, 500)) for _ in range(n))
def run(args):
    t = time.time(); subprocess.run([V, "embed", model, "-t", "2", *args], check=True, capture_output=True); return time.time() - t
base = min(run(["--ids", ids(1)]) for _ in range(2))
short = sum([["--ids", ids(13)] for _ in range(64)], [])
long = sum([["--ids", ids(512)] for _ in range(4)], [])
s = min(run(short) for _ in range(2)) - base
l = min(run(long) for _ in range(2)) - base
print("load %.2fs  64x13: %.2fs (%.0f emb/s)  4x512: %.2fs (%.0f tok/s)" % (base, s, 64 / s, l, 2048 / l))
