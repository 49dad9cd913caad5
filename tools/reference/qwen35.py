"""Qwen3.5 hybrid forward pass (qwen35, qwen35moe) for the float64 reference,
written from the published model definition (Hugging Face's Qwen3-Next /
Qwen3.5 modelling code: Qwen3NextGatedDeltaNet with its recurrent
torch_recurrent_gated_delta_rule, gated Qwen3NextAttention, and the sparse MoE
block with a sigmoid-gated shared expert).

The GGUF file holds the weights in llama.cpp's converted form; this module
first undoes the conversion so the computation below follows the Hugging Face
layout literally:
  - value heads: the converter stores them tiled (value head j*Hk + k belongs
    to key head k); Hugging Face groups them by key head (k*r + j) and repeats
    q/k with repeat_interleave. We put them back in grouped order.
  - ssm_a = -exp(A_log) is used as the decay rate -A directly;
  - the "+1" of the zero-centred RMSNorms is already in the stored weights.
"""
import numpy as np


def _silu(x):
    return x / (1 + np.exp(-x))


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _softplus(x):
    return np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20))))


def _l2norm(x, eps=1e-6):
    return x / np.sqrt((x * x).sum(-1, keepdims=True) + eps)


class Qwen35:
    def __init__(self, ref):
        m, a = ref.m, ref.a
        self.ref = ref
        self.W = ref.W
        self.interval = m.get(a + ".full_attention_interval", 4)
        self.d_conv = m[a + ".ssm.conv_kernel"]
        self.dk = m[a + ".ssm.state_size"]
        self.hk = m[a + ".ssm.group_count"]
        self.hv = m[a + ".ssm.time_step_rank"]
        self.per = self.hv // self.hk
        self.n_layer = ref.n_layer - m.get(a + ".nextn_predict_layers", 0)

    def grouped(self, t, axis, width):
        """Tiled value-head order (GGUF) -> grouped order (Hugging Face) along axis."""
        t = np.moveaxis(t, axis, 0)
        shape = t.shape
        t = t.reshape((self.per, self.hk, width) + shape[1:])
        t = np.swapaxes(t, 0, 1).reshape(shape)
        return np.moveaxis(t, 0, axis)

    def deltanet(self, p, h):
        W, T = self.W, h.shape[0]
        Hk, Hv, D, K = self.hk, self.hv, self.dk, self.d_conv
        Kd = Hk * D
        qkv_w = W[p + "attn_qkv.weight"]  # [2*Kd + Vd, E]
        qkv_w = np.concatenate([qkv_w[:2 * Kd], self.grouped(qkv_w[2 * Kd:], 0, D)], axis=0)
        conv_w = W[p + "ssm_conv1d.weight"]  # [C, K]
        conv_w = np.concatenate([conv_w[:2 * Kd], self.grouped(conv_w[2 * Kd:], 0, D)], axis=0)
        z = h @ self.grouped(W[p + "attn_gate.weight"], 0, D).T
        b = h @ self.grouped(W[p + "ssm_beta.weight"], 0, 1).T
        a = h @ self.grouped(W[p + "ssm_alpha.weight"], 0, 1).T
        neg_A = self.grouped(W[p + "ssm_a"], 0, 1)  # -exp(A_log)
        dt_bias = self.grouped(W[p + "ssm_dt.bias"], 0, 1)
        out_w = self.grouped(W[p + "ssm_out.weight"], 1, D)  # [E, Vd]

        mixed = h @ qkv_w.T  # [T, C]
        padded = np.concatenate([np.zeros((K - 1, mixed.shape[1])), mixed], axis=0)
        conv = np.stack([(padded[t:t + K] * conv_w.T).sum(0) for t in range(T)])
        conv = _silu(conv)
        q = conv[:, :Kd].reshape(T, Hk, D)
        k = conv[:, Kd:2 * Kd].reshape(T, Hk, D)
        v = conv[:, 2 * Kd:].reshape(T, Hv, D)
        beta = _sigmoid(b)
        g = neg_A * _softplus(a + dt_bias)
        q = np.repeat(q, self.per, axis=1)  # repeat_interleave
        k = np.repeat(k, self.per, axis=1)
        q, k = _l2norm(q), _l2norm(k)
        q = q / np.sqrt(D)
        S = np.zeros((Hv, D, D))
        o = np.zeros((T, Hv, D))
        for t in range(T):
            S = S * np.exp(g[t])[:, None, None]
            kv_mem = (S * k[t][:, :, None]).sum(1)
            delta = (v[t] - kv_mem) * beta[t][:, None]
            S = S + k[t][:, :, None] * delta[:, None, :]
            o[t] = (S * q[t][:, :, None]).sum(1)
        o = self.ref.rms(o, W[p + "ssm_norm.weight"]) * _silu(z.reshape(T, Hv, D))
        return o.reshape(T, Hv * D) @ out_w.T

    def attention(self, p, h, pos, mask):
        ref, W, T = self.ref, self.W, h.shape[0]
        H, Hkv, D = ref.n_head, ref.n_kv, ref.dk
        qg = (h @ W[p + "attn_q.weight"].T).reshape(T, H, 2 * D)
        q, gate = qg[..., :D], qg[..., D:].reshape(T, H * D)
        k = (h @ W[p + "attn_k.weight"].T).reshape(T, Hkv, D)
        v = (h @ W[p + "attn_v.weight"].T).reshape(T, Hkv, D)
        q, k = ref.rms(q, W[p + "attn_q_norm.weight"]), ref.rms(k, W[p + "attn_k_norm.weight"])
        q, k = ref.rope(q, pos), ref.rope(k, pos)
        k, v = np.repeat(k, H // Hkv, axis=1), np.repeat(v, H // Hkv, axis=1)
        s = np.einsum("thd,shd->hts", q, k) / np.sqrt(D) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        att = np.einsum("hts,shd->thd", s, v).reshape(T, H * D) * _sigmoid(gate)
        return att @ W[p + "attn_output.weight"].T

    def ffn(self, p, h):
        W = self.W
        if p + "ffn_gate_inp.weight" not in W:
            return self.ref.mlp(h, p, "")
        shared = self.ref.mlp(h, p, "_shexp") * _sigmoid(h @ W[p + "ffn_gate_inp_shexp.weight"])[:, None]
        return self.ref.moe(p, h) + shared

    def logits(self, ids):
        ref, W = self.ref, self.W
        ids = np.asarray(ids)
        T = len(ids)
        pos = np.arange(T, dtype=np.float64)
        mask = np.triu(np.full((T, T), -np.inf), k=1)
        x = ref.emb[ids]
        for i in range(self.n_layer):
            p = "blk.%d." % i
            h = ref.rms(x, W[p + "attn_norm.weight"])
            if (i + 1) % self.interval != 0:
                x = x + self.deltanet(p, h)
            else:
                x = x + self.attention(p, h, pos, mask)
            x = x + self.ffn(p, ref.rms(x, W[p + "post_attention_norm.weight"]))
        return ref.rms(x, W["output_norm.weight"]) @ ref.out.T
