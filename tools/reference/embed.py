#!/usr/bin/python3
"""Independent float64 reference for embedding and reranking models, written
from the published definitions, not from Volga's code:

- bert (Hugging Face BertModel / XLMRobertaModel, in llama.cpp's GGUF
  tensor names): word + position + token-type-0 embeddings, LayerNorm; per
  layer, bidirectional multi-head self-attention with biases, residual,
  LayerNorm, intermediate dense + exact (erf) GELU, output dense, residual,
  LayerNorm. Rank models: the first token's state through the
  classification head (dense, tanh, out_proj) as RobertaClassificationHead.
- decoders (qwen3 as Qwen3-Embedding): forward.py's Reference, states after
  the final RMSNorm.

Decoder rerankers (Qwen3-Reranker, --yes-no YES,NO): the full logits of
each input's last token (forward.py's Reference), and the score
P(yes) = exp(l_yes) / (exp(l_yes) + exp(l_no)), the two-way softmax Qwen's
model card takes over the "yes" and "no" tokens.

Pooling: mean over tokens, cls (first token), last (last token), none (every
token); then L2 normalisation unless --no-normalize.

    embed.py MODEL --inputs '[[101, 7592, 102], [101, 102]]' [--pooling mean] [--no-normalize]
    embed.py MODEL --inputs '[[...]]' --rank
    embed.py MODEL --inputs '[[...]]' --yes-no 9693,2152
prints JSON {"embeddings": [[...], ...]} or {"scores": [...]}.
"""
import argparse
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf_np import GGUF  # noqa: E402

POOLING = {0: "none", 1: "mean", 2: "cls", 3: "last", 4: "rank"}
_erf = np.vectorize(math.erf)


class Bert:
    def __init__(self, g):
        m, a = g.meta, "bert"
        self.n_head = m[a + ".attention.head_count"]
        self.n_layer = m[a + ".block_count"]
        self.eps = m[a + ".attention.layer_norm_epsilon"]
        self.W = {name: g.array(name).astype(np.float64) for name in g.tensors}

    def ln(self, x, name):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + self.eps) * self.W[name + ".weight"] + self.W[name + ".bias"]

    def lin(self, x, name):
        return x @ self.W[name + ".weight"].T + self.W[name + ".bias"]

    def hidden_states(self, ids):
        W, T = self.W, len(ids)
        x = W["token_embd.weight"][ids] + W["position_embd.weight"][:T]
        if "token_types.weight" in W:
            x = x + W["token_types.weight"][0]
        x = self.ln(x, "token_embd_norm")
        H = self.n_head
        for i in range(self.n_layer):
            p = "blk.%d." % i
            q, k, v = (self.lin(x, p + n).reshape(T, H, -1) for n in ("attn_q", "attn_k", "attn_v"))
            d = q.shape[-1]
            s = np.einsum("thd,shd->hts", q, k) / np.sqrt(d)
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            att = np.einsum("hts,shd->thd", s, v).reshape(T, -1)
            h = self.ln(x + self.lin(att, p + "attn_output"), p + "attn_output_norm")
            u = self.lin(h, p + "ffn_up")
            u = 0.5 * u * (1.0 + _erf(u / np.sqrt(2.0)))
            x = self.ln(h + self.lin(u, p + "ffn_down"), p + "layer_output_norm")
        return x

    def rank(self, ids):
        h = np.tanh(self.lin(self.hidden_states(ids)[0], "cls"))
        return self.lin(h, "cls.output") if "cls.output.weight" in self.W else h


def load(path):
    g = GGUF(path)
    arch = g.meta["general.architecture"]
    if arch == "bert":
        return Bert(g), g.meta.get("bert.pooling_type")
    from forward import Reference  # noqa: E402
    return Reference(path), g.meta.get(arch + ".pooling_type")


def pool(states, how):
    if how == "mean":
        return states.mean(0)
    if how == "cls":
        return states[0]
    if how == "last":
        return states[-1]
    return states  # none


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--inputs", required=True, help="JSON list of token id lists")
    ap.add_argument("--pooling", help="none, mean, cls, last (default: the file's, else cls / last)")
    ap.add_argument("--no-normalize", action="store_true")
    ap.add_argument("--rank", action="store_true", help="reranker scores (classification head)")
    ap.add_argument("--yes-no", help="decoder reranker: the ids of the 'yes' and 'no' tokens, comma-separated")
    args = ap.parse_args()
    model, file_pooling = load(args.model)
    inputs = json.loads(args.inputs)
    if args.yes_no:
        yes, no = (int(x) for x in args.yes_no.split(","))
        scores = []
        for ids in inputs:
            last = model.logits(ids)[-1]
            pair = np.array([last[yes], last[no]], dtype=np.float64)
            e = np.exp(pair - pair.max())
            scores.append(float(e[0] / e.sum()))
        print(json.dumps({"scores": scores}))
        return
    if args.rank:
        print(json.dumps({"scores": [float(np.atleast_1d(model.rank(ids))[0]) for ids in inputs]}))
        return
    how = args.pooling or POOLING.get(file_pooling, "cls" if isinstance(model, Bert) else "last")
    out = []
    for ids in inputs:
        v = np.atleast_2d(pool(model.hidden_states(ids), how))
        if not args.no_normalize:
            v = v / np.linalg.norm(v, axis=-1, keepdims=True)
        out.append(v.reshape(-1).tolist())
    print(json.dumps({"embeddings": out}))


if __name__ == "__main__":
    main()
