#!/usr/bin/python3
"""Independent float64 reference forward pass for the llama, qwen2, qwen3,
qwen3moe, deepseek2 and qwen35/qwen35moe (see qwen35.py) architectures, written from the published model
definitions (Llama: RMSNorm, RoPE, grouped-query attention, SwiGLU; Qwen2:
q/k/v biases; Qwen3: per-head q/k RMSNorm; Qwen3-MoE: softmax router, top-k
experts with renormalised weights, as Hugging Face's Qwen3MoeSparseMoeBlock
with norm_topk_prob; DeepSeek-V2/V3: multi-head latent attention computed in
the naive, decompressed form of Hugging Face's DeepseekV3Attention (keys and
values rebuilt from the latent for every head), YaRN rotary embedding and
softmax scale, MoEGate with softmax or sigmoid scores, correction bias,
group-limited top-k, normalisation and routed scaling, shared experts) in
GGUF's tensor conventions. Quantized weights are dequantized by gguf_np and
then used in float64.

    forward.py MODEL --ids 1,2,3 [--logits OUT.npy] [--greedy N] [--json]
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf_np import GGUF  # noqa: E402
from qwen35 import Qwen35  # noqa: E402


class Reference:
    def __init__(self, path):
        g = GGUF(path)
        m = g.meta
        a = m["general.architecture"]
        if a not in ("llama", "qwen2", "qwen3", "qwen3moe", "deepseek2", "qwen35", "qwen35moe"):
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
        self.neox = a not in ("llama", "deepseek2")  # llama, deepseek: adjacent pairs; qwen: halves
        self.n_expert_used = m.get(a + ".expert_used_count", 0)
        self.m, self.a = m, a
        self.W = {name: g.array(name) for name in g.tensors}
        # Newer converters stack each expert's gate and up rows in one tensor,
        # ffn_gate_up_exps [n_expert][2 n_ff][n_embd]: gate rows first.
        for name in [n for n in self.W if n.endswith("ffn_gate_up_exps.weight")]:
            both = self.W.pop(name)
            half = both.shape[1] // 2
            self.W[name.replace("gate_up_exps", "gate_exps")] = both[:, :half]
            self.W[name.replace("gate_up_exps", "up_exps")] = both[:, half:]
        self.emb = self.W["token_embd.weight"]  # [vocab, n_embd]
        self.out = self.W.get("output.weight", self.emb)
        inv = self.base ** (-np.arange(0, self.n_rot, 2, dtype=np.float64) / self.n_rot)
        if "rope_freqs.weight" in self.W:
            inv = inv / self.W["rope_freqs.weight"]
        self.rope_scale = 1.0  # multiplies cos and sin
        self.softmax_scale = None
        stype = m.get(a + ".rope.scaling.type", "none")
        factor = m.get(a + ".rope.scaling.factor", 1.0)
        if stype == "linear":
            inv = inv / factor
        elif stype == "yarn":
            inv = self.yarn_inv_freq(inv, factor, m[a + ".rope.scaling.original_context_length"])
        self.inv_freq = inv
        if a == "deepseek2":
            self.init_deepseek2(stype, factor)
        elif stype == "yarn":
            self.rope_scale = 0.1 * np.log(factor) + 1.0  # HF: attention_factor = get_mscale(factor)
        self.hybrid = Qwen35(self) if a in ("qwen35", "qwen35moe") else None

    def yarn_inv_freq(self, inv_extra, factor, orig_ctx, beta_fast=32, beta_slow=1):
        """Hugging Face's _compute_yarn_parameters / DeepseekV3YarnRotaryEmbedding."""
        dim, base = self.n_rot, self.base

        def corr_dim(n_rot):
            return dim * np.log(orig_ctx / (n_rot * 2 * np.pi)) / (2 * np.log(base))
        low = max(np.floor(corr_dim(beta_fast)), 0)
        high = min(np.ceil(corr_dim(beta_slow)), dim - 1)
        if low == high:
            high += 0.001
        ramp = np.clip((np.arange(dim // 2, dtype=np.float64) - low) / (high - low), 0, 1)
        extra_mask = 1 - ramp
        return inv_extra / factor * (1 - extra_mask) + inv_extra * extra_mask

    def init_deepseek2(self, stype, factor):
        m, a = self.m, self.a
        self.kv_rank = m[a + ".attention.kv_lora_rank"]
        self.dq = m.get(a + ".attention.key_length_mla", self.dk)   # nope + rope per head
        self.dvm = m.get(a + ".attention.value_length_mla", self.dv)
        self.nope = self.dq - self.n_rot
        self.n_lead = m.get(a + ".leading_dense_block_count", 0)
        self.sigmoid = m.get(a + ".expert_gating_func", 1) == 2
        self.norm_topk = bool(m.get(a + ".expert_weights_norm", False))
        self.routed_scale = m.get(a + ".expert_weights_scale", 0.0) or 1.0
        self.n_group = m.get(a + ".expert_group_count", 1)
        self.topk_group = m.get(a + ".expert_group_used_count", 1)
        self.softmax_scale = self.dq ** -0.5
        if stype == "yarn":
            # GGUF stores 0.1 * mscale_all_dim; DeepSeek configs set mscale = mscale_all_dim,
            # so cos/sin keep unit length and the softmax scale takes mscale^2.
            mscale_all_dim = m.get(a + ".rope.scaling.yarn_log_multiplier", 0.0) / 0.1
            if mscale_all_dim:
                ms = 0.1 * mscale_all_dim * np.log(factor) + 1.0 if factor > 1 else 1.0
                self.softmax_scale *= ms * ms
    def rms(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def rope(self, x, pos):
        """x: [T, heads, d]; rotates the first n_rot dims of each head."""
        ang = pos[:, None] * self.inv_freq[None, :]  # [T, n_rot/2]
        c, s = np.cos(ang)[:, None, :] * self.rope_scale, np.sin(ang)[:, None, :] * self.rope_scale
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
        if self.hybrid:
            return self.hybrid.logits(ids)
        return self.hidden_states(ids) @ self.out.T

    def hidden_states(self, ids):
        """Every token's last hidden state after the output norm (what decoder
        embedding models such as Qwen3-Embedding pool)."""
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
            if self.arch == "deepseek2":
                x = x + self.mla(p, h, pos, mask)
                h = self.rms(x, W[p + "ffn_norm.weight"])
                if i < self.n_lead:
                    x = x + self.mlp(h, p, "")
                else:
                    x = x + self.deepseek_moe(p, h)
                continue
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
        return self.rms(x, self.W["output_norm.weight"])

    def mlp(self, h, p, suffix):
        W = self.W
        g = h @ W[p + "ffn_gate%s.weight" % suffix].T
        u = h @ W[p + "ffn_up%s.weight" % suffix].T
        return (g / (1 + np.exp(-g)) * u) @ W[p + "ffn_down%s.weight" % suffix].T

    def mla(self, p, h, pos, mask):
        """DeepSeek multi-head latent attention, naive form: every head's keys and
        values are decompressed from the latent (HF DeepseekV3Attention)."""
        W, T, H = self.W, h.shape[0], self.n_head
        nope, R, C, Vd = self.nope, self.n_rot, self.kv_rank, self.dvm
        if p + "attn_q_a.weight" in W:
            q = self.rms(h @ W[p + "attn_q_a.weight"].T, W[p + "attn_q_a_norm.weight"]) @ W[p + "attn_q_b.weight"].T
        else:
            q = h @ W[p + "attn_q.weight"].T
        q = q.reshape(T, H, nope + R)
        ckv = h @ W[p + "attn_kv_a_mqa.weight"].T  # [T, C + R]
        c = self.rms(ckv[:, :C], W[p + "attn_kv_a_norm.weight"])
        if p + "attn_kv_b.weight" in W:
            kv_b = W[p + "attn_kv_b.weight"]  # [H * (nope + Vd), C]
        else:  # split form: attn_k_b holds W_UK transposed per head, attn_v_b holds W_UV
            k_b, v_b = W[p + "attn_k_b.weight"], W[p + "attn_v_b.weight"]  # [H, C, nope], [H, Vd, C]
            kv_b = np.concatenate([np.concatenate([k_b[j].T, v_b[j]], axis=0) for j in range(H)], axis=0)
        kv = (c @ kv_b.T).reshape(T, H, nope + Vd)
        k_nope, v = kv[..., :nope], kv[..., nope:]
        q_pe = self.rope(q[..., nope:], pos)
        k_pe = self.rope(ckv[:, None, C:], pos)  # one rotated key part shared by all heads
        qf = np.concatenate([q[..., :nope], q_pe], axis=-1)
        kf = np.concatenate([k_nope, np.repeat(k_pe, H, axis=1)], axis=-1)
        scores = np.einsum("thd,shd->hts", qf, kf) * self.softmax_scale + mask
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        att = np.einsum("hts,shd->thd", scores, v).reshape(T, H * Vd)
        return att @ W[p + "attn_output.weight"].T

    def deepseek_moe(self, p, h):
        """HF DeepseekV3MoE / MoEGate (noaux_tc) and DeepseekV2 (softmax) routing."""
        W = self.W
        logits = h @ W[p + "ffn_gate_inp.weight"].T
        if self.sigmoid:
            scores = 1 / (1 + np.exp(-logits))
        else:
            scores = np.exp(logits - logits.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
        choice = scores + W.get(p + "exp_probs_b.bias", 0.0)
        X = scores.shape[1]
        out = self.mlp(h, p, "_shexp") if p + "ffn_gate_shexp.weight" in W else np.zeros_like(h)
        for t in range(h.shape[0]):
            ch = choice[t].copy()
            if self.n_group > 1:
                per = X // self.n_group
                grp = ch.reshape(self.n_group, per)
                gscore = np.sort(grp, axis=1)[:, -2:].sum(axis=1)
                keep = np.argsort(-gscore, kind="stable")[:self.topk_group]
                gmask = np.full(self.n_group, True)
                gmask[keep] = False
                ch = np.where(np.repeat(gmask, per), -np.inf, ch)
            top = np.argsort(-ch, kind="stable")[:self.n_expert_used]
            w = scores[t, top]
            if self.norm_topk:
                w = w / (w.sum() + 1e-20)
            w = w * self.routed_scale
            for e, we in zip(top, w):
                g = W[p + "ffn_gate_exps.weight"][e] @ h[t]
                u = W[p + "ffn_up_exps.weight"][e] @ h[t]
                out[t] += we * (W[p + "ffn_down_exps.weight"][e] @ (g / (1 + np.exp(-g)) * u))
        return out

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
