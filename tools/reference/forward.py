#!/usr/bin/python3
"""Independent float64 reference forward pass for the llama, qwen2, qwen3 and
qwen3moe architectures, written from the published model definitions (Llama:
RMSNorm, RoPE, grouped-query attention, SwiGLU; Qwen2: q/k/v biases; Qwen3:
per-head q/k RMSNorm; Qwen3-MoE: softmax router, top-k experts with
renormalised weights, as Hugging Face's Qwen3MoeSparseMoeBlock with
norm_topk_prob) in GGUF's tensor conventions. Quantized weights are dequantized
by gguf_np and then used in float64.

    forward.py MODEL --ids 1,2,3 [--logits OUT.npy] [--greedy N] [--json]
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf_np import GGUF  # noqa: E402


class Reference:
    def __init__(self, path):
        g = GGUF(path)
        m = g.meta
        a = m["general.architecture"]
        if a not in ("llama", "qwen2", "qwen3", "qwen3moe"):
            raise SystemExit("reference: unsupported architecture " + a)
        self.arch = a
        self.n_embd = m[a + ".embedding_length"]
        self.n_layer = m[a + ".block_count"]
        self.n_head = m[a + ".attention.head_count"]
        self.n_kv = m.get(a + ".attention.head_count_kv", self.n_head)
        self.dk = m.get(a + ".attention.key_length", self.n_embd // self.n_head)
        self.dv = m.get(a + ".attention.value_length", self.dk)
        self.n_rot = m.get(a + ".rope.dimension_count", self.dk)
        self.eps = m.get(a + ".attention.layer_norm_rms_epsilon", 1e-6)
        self.base = m.get(a + ".rope.freq_base", 10000.0)
        self.neox = a != "llama"  # llama: adjacent pairs; qwen: halves
        self.n_expert_used = m.get(a + ".expert_used_count", 0)
        self.W = {name: g.array(name) for name in g.tensors}
        self.emb = self.W["token_embd.weight"]  # [vocab, n_embd]
        self.out = self.W.get("output.weight", self.emb)
        inv = self.base ** (-np.arange(0, self.n_rot, 2, dtype=np.float64) / self.n_rot)
        if "rope_freqs.weight" in self.W:
            inv = inv / self.W["rope_freqs.weight"]
        self.inv_freq = inv

    def rms(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def rope(self, x, pos):
        """x: [T, heads, d]; rotates the first n_rot dims of each head."""
        ang = pos[:, None] * self.inv_freq[None, :]  # [T, n_rot/2]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        x = x.copy()
        half = self.n_rot // 2
        if self.neox:
            a, b = x[..., :half].copy(), x[..., half:self.n_rot].copy()
            x[..., :half] = a * c - b * s
            x[..., half:self.n_rot] = a * s + b * c
        else:
            a, b = x[..., 0:self.n_rot:2].copy(), x[..., 1:self.n_rot:2].copy()
            x[..., 0:self.n_rot:2] = a * c - b * s
            x[..., 1:self.n_rot:2] = a * s + b * c
        return x

    def logits(self, ids):
        ids = np.asarray(ids)
        T = len(ids)
        pos = np.arange(T, dtype=np.float64)
        x = self.emb[ids]
        mask = np.triu(np.full((T, T), -np.inf), k=1)
        group = self.n_head // self.n_kv
        for i in range(self.n_layer):
            p = "blk.%d." % i
            W = self.W
            h = self.rms(x, W[p + "attn_norm.weight"])
            q = h @ W[p + "attn_q.weight"].T
            k = h @ W[p + "attn_k.weight"].T
            v = h @ W[p + "attn_v.weight"].T
            if p + "attn_q.bias" in W:
                q, k, v = q + W[p + "attn_q.bias"], k + W[p + "attn_k.bias"], v + W[p + "attn_v.bias"]
            q = q.reshape(T, self.n_head, self.dk)
            k = k.reshape(T, self.n_kv, self.dk)
            v = v.reshape(T, self.n_kv, self.dv)
            if p + "attn_q_norm.weight" in W:
                q = self.rms(q, W[p + "attn_q_norm.weight"])
                k = self.rms(k, W[p + "attn_k_norm.weight"])
            q, k = self.rope(q, pos), self.rope(k, pos)
            k = np.repeat(k, group, axis=1)
            v = np.repeat(v, group, axis=1)
            scores = np.einsum("thd,shd->hts", q, k) / np.sqrt(self.dk) + mask
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            att = np.einsum("hts,shd->thd", scores, v).reshape(T, self.n_head * self.dv)
            x = x + att @ W[p + "attn_output.weight"].T
            h = self.rms(x, W[p + "ffn_norm.weight"])
            if p + "ffn_gate_inp.weight" in W:
                x = x + self.moe(p, h)
                continue
            g = h @ W[p + "ffn_gate.weight"].T
            u = h @ W[p + "ffn_up.weight"].T
            x = x + (g / (1 + np.exp(-g)) * u) @ W[p + "ffn_down.weight"].T
        return self.rms(x, self.W["output_norm.weight"]) @ self.out.T

    def moe(self, p, h):
        W = self.W
        logits = h @ W[p + "ffn_gate_inp.weight"].T  # [T, n_expert]
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        out = np.zeros_like(h)
        for t in range(h.shape[0]):
            top = np.argsort(-probs[t], kind="stable")[:self.n_expert_used]
            w = probs[t, top] / probs[t, top].sum()
            for e, we in zip(top, w):
                g = W[p + "ffn_gate_exps.weight"][e] @ h[t]
                u = W[p + "ffn_up_exps.weight"][e] @ h[t]
                out[t] += we * (W[p + "ffn_down_exps.weight"][e] @ (g / (1 + np.exp(-g)) * u))
        return out

    def greedy(self, ids, n):
        """Greedy continuation; also returns the top-2 logit gap at each step."""
        ids = list(ids)
        out, gaps = [], []
        for _ in range(n):
            row = self.logits(ids)[-1]
            top2 = np.sort(row)[-2:]
            nxt = int(np.argmax(row))
            out.append(nxt)
            gaps.append(float(top2[1] - top2[0]))
            ids.append(nxt)
        return out, gaps


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--ids", required=True, help="comma-separated prompt token ids")
    ap.add_argument("--logits", help="write [tokens, vocab] float64 logits here (.npy)")
    ap.add_argument("--greedy", type=int, default=0, help="greedy continuation length")
    args = ap.parse_args()
    ref = Reference(args.model)
    ids = [int(t) for t in args.ids.split(",")]
    result = {}
    if args.logits:
        np.save(args.logits, ref.logits(ids))
    if args.greedy:
        result["ids"], result["gaps"] = ref.greedy(ids, args.greedy)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
