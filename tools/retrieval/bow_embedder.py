#!/usr/bin/env python3
"""Turns a synthetic bert GGUF (volga-synth --arch bert --pooling mean --type f32)
into an embedding model whose vectors mean something: a bag of words.

Every layer's attention output and feed-forward down projection are set to
zero, position and token-type embeddings to zero and every norm to the
identity, so each token's final state is LayerNorm(its token embedding); mean
pooling then averages one fixed random direction per token. Texts that share
words get close vectors, texts about different things (different words) get
nearly orthogonal ones. Special tokens, punctuation and a few very common
words of English, French, Russian and Chinese get a zero embedding so they do
not pull unrelated texts together.

The vocabulary is whatever the input file carries (the test makes it from
../shared/testdata/vocab/ggml-vocab-bert-bge.gguf); the weights are
rewritten in place, deterministically from --seed.

    bow_embedder.py MODEL.gguf [--seed N]
"""
import argparse
import os
import sys
import unicodedata

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from gguf_np import GGUF  # noqa: E402

STOP_WORDS = set("""
the a an of and in to is are was were for on with by it this that as at be or from its their which
le la les de des du et un une en est dans pour par sur au aux qui que il elle ce
и в на с по не что это как для из к а о его ее их от до за при
的 是 在 和 了 有 也 与 中 为 一 这 个 们 以 及
""".split())


def is_punct_or_special(piece):
    core = piece[2:] if piece.startswith("##") else piece
    if piece.startswith("[") and piece.endswith("]"):
        return True
    return all(unicodedata.category(ch).startswith(("P", "S")) for ch in core) if core else True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    g = GGUF(args.model)
    tokens = g.meta["tokenizer.ggml.tokens"]
    base = np.frombuffer(g.buf, np.uint8).ctypes.data
    writes = {}
    for name, (tname, dims, raw) in g.tensors.items():
        if tname != "f32":
            sys.exit("bow_embedder.py: %s is %s; make the model with --type f32" % (name, tname))
        n = int(np.prod(dims))
        if name == "token_embd.weight":
            n_embd = dims[0]
            rng = np.random.default_rng(args.seed)
            emb = rng.standard_normal((len(tokens), n_embd)).astype(np.float32)
            for i, piece in enumerate(tokens):
                if is_punct_or_special(piece) or piece in STOP_WORDS:
                    emb[i] = 0
            data = emb.reshape(-1)
        elif name.endswith("norm.weight"):
            data = np.ones(n, np.float32)
        else:
            # Positions, token types, norm biases, attention and feed-forward:
            # zero (q/k/v/up are harmless but zeroed too, for a clean file).
            data = np.zeros(n, np.float32)
        writes[raw.ctypes.data - base] = data
    with open(args.model, "r+b") as f:
        for offset, data in writes.items():
            f.seek(offset)
            f.write(data.tobytes())


if __name__ == "__main__":
    main()
