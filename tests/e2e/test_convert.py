"""End-to-end: `volga convert` on Hugging Face checkpoints written here with
NumPy (config.json, safetensors in F32/F16/BF16, a byte-level tokenizer.json),
checked against a NumPy float64 forward pass written in Hugging Face's own
conventions (rotate-half RoPE on un-permuted Q/K rows), so the converter's
row permutation, tensor naming and metadata are checked independently of
Volga's GGUF conventions. Plus bad input: truncated and hostile files.

Run through ctest (VOLGA_BIN, VOLGA_ROOT) with /usr/bin/python3."""
import json
import os
import shutil
import struct
import subprocess
import tempfile
import unittest

import numpy as np

ROOT = os.environ.get("VOLGA_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
VOLGA = os.environ.get("VOLGA_BIN", os.path.join(ROOT, "build", "bin", "volga"))
TMP = tempfile.mkdtemp(prefix="volga-convert-")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
               r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def run(*args, check=True):
    p = subprocess.run(list(args), capture_output=True)
    p.stdout = p.stdout.decode("utf-8")
    p.stderr = p.stderr.decode("utf-8", "replace")
    if check and p.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr))
    return p


def byte_symbols():
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def write_tokenizer(folder):
    sym = byte_symbols()
    vocab = {sym[b]: b for b in range(256)}
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    added = [{"id": len(vocab) + i, "content": s, "special": True, "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False} for i, s in enumerate(specials)]
    tok = {"version": "1.0", "added_tokens": added, "normalizer": None,
           "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
               {"type": "Split", "pattern": {"Regex": QWEN2_REGEX}, "behavior": "Isolated", "invert": False},
               {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
           "decoder": {"type": "ByteLevel"},
           "model": {"type": "BPE", "vocab": vocab, "merges": [a + " " + b for a, b in merges]}}
    with open(os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"eos_token": "<|im_end|>", "bos_token": None, "add_bos_token": False}, f)
    return len(vocab) + len(specials)


def encode(x, dtype):
    """Raw bytes in a safetensors dtype, and the values those bytes hold."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if dtype == "F32":
        return x.tobytes(), x.astype(np.float64)
    if dtype == "F16":
        h = x.astype(np.float16)
        return h.tobytes(), h.astype(np.float64)
    bits = (x.view(np.uint32) >> 16).astype(np.uint16)  # BF16 by truncation
    return bits.tobytes(), (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def write_safetensors(path, tensors, dtype):
    header, blobs, off, values = {}, [], 0, {}
    for name, x in tensors.items():
        raw, values[name] = encode(x, dtype)
        header[name] = {"dtype": dtype, "shape": list(x.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    return values


def make_checkpoint(name, arch, dtype, seed, tied, head_dim=None):
    folder = os.path.join(TMP, name)
    os.makedirs(folder, exist_ok=True)
    n_vocab = write_tokenizer(folder) + 5  # embedding rows beyond the tokenizer, as real models pad
    E, L, H, KV, FF = 64, 2, 4, 2, 96
    hd = head_dim or E // H
    cfg = {"architectures": [arch], "hidden_size": E, "num_hidden_layers": L, "num_attention_heads": H,
           "num_key_value_heads": KV, "intermediate_size": FF, "max_position_embeddings": 256,
           "rms_norm_eps": 1e-6, "rope_theta": 10000.0 if arch.startswith("Llama") else 1e6,
           "tie_word_embeddings": tied, "vocab_size": n_vocab, "rope_scaling": None}
    if head_dim:
        cfg["head_dim"] = head_dim
    rng = np.random.default_rng(seed)
    g = lambda *s: rng.normal(0, 0.15, s)  # noqa: E731
    t = {"model.embed_tokens.weight": g(n_vocab, E) * 3, "model.norm.weight": 1 + g(E)}
    if not tied:
        t["lm_head.weight"] = g(n_vocab, E)
    for i in range(L):
        p = "model.layers.%d." % i
        t[p + "input_layernorm.weight"] = 1 + g(E)
        t[p + "self_attn.q_proj.weight"] = g(H * hd, E)
        t[p + "self_attn.k_proj.weight"] = g(KV * hd, E)
        t[p + "self_attn.v_proj.weight"] = g(KV * hd, E)
        t[p + "self_attn.o_proj.weight"] = g(E, H * hd)
        if arch == "Qwen2ForCausalLM":
            for k, n in (("q", H), ("k", KV), ("v", KV)):
                t[p + "self_attn.%s_proj.bias" % k] = g(n * hd)
        if arch == "Qwen3ForCausalLM":
            t[p + "self_attn.q_norm.weight"] = 1 + g(hd)
            t[p + "self_attn.k_norm.weight"] = 1 + g(hd)
        t[p + "post_attention_layernorm.weight"] = 1 + g(E)
        t[p + "mlp.gate_proj.weight"] = g(FF, E)
        t[p + "mlp.up_proj.weight"] = g(FF, E)
        t[p + "mlp.down_proj.weight"] = g(E, FF)
    t["model.layers.0.self_attn.rotary_emb.inv_freq"] = np.arange(hd // 2, dtype=np.float32)  # ignored, as HF
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f)
    values = write_safetensors(os.path.join(folder, "model.safetensors"), t, dtype)
    return folder, cfg, values


def rms(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def hf_forward(cfg, W, ids):
    """Hugging Face's Llama / Qwen2 / Qwen3 forward pass in float64."""
    E, H, KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd, eps, T = cfg.get("head_dim", E // H), cfg["rms_norm_eps"], len(ids)
    inv = 1.0 / cfg["rope_theta"] ** (np.arange(0, hd, 2) / hd)
    ang = np.outer(np.arange(T), inv)
    cos, sin = np.cos(np.concatenate([ang, ang], -1)), np.sin(np.concatenate([ang, ang], -1))
    rope = lambda x: x * cos[:, None] + np.concatenate([-x[..., hd // 2:], x[..., :hd // 2]], -1) * sin[:, None]  # noqa: E731
    x = W["model.embed_tokens.weight"][ids]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        h = rms(x, W[p + "input_layernorm.weight"], eps)
        q, k, v = (h @ W[p + "self_attn.%s_proj.weight" % n].T + W.get(p + "self_attn.%s_proj.bias" % n, 0)
                   for n in "qkv")
        q, k, v = q.reshape(T, H, hd), k.reshape(T, KV, hd), v.reshape(T, KV, hd)
        if p + "self_attn.q_norm.weight" in W:
            q, k = rms(q, W[p + "self_attn.q_norm.weight"], eps), rms(k, W[p + "self_attn.k_norm.weight"], eps)
        q, k = rope(q), rope(k)
        out = np.zeros((T, H, hd))
        for hh in range(H):
            kv = hh // (H // KV)
            s = q[:, hh] @ k[:, kv].T / np.sqrt(hd) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            out[:, hh] = (s / s.sum(-1, keepdims=True)) @ v[:, kv]
        x = x + out.reshape(T, H * hd) @ W[p + "self_attn.o_proj.weight"].T
        h = rms(x, W[p + "post_attention_layernorm.weight"], eps)
        gate, up = h @ W[p + "mlp.gate_proj.weight"].T, h @ W[p + "mlp.up_proj.weight"].T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ W[p + "mlp.down_proj.weight"].T
    x = rms(x, W["model.norm.weight"], eps)
    return x @ W.get("lm_head.weight", W["model.embed_tokens.weight"]).T


class Convert(unittest.TestCase):
    def check(self, name, arch, dtype, tied, head_dim=None, seed=1):
        folder, cfg, W = make_checkpoint(name, arch, dtype, seed, tied, head_dim)
        out = os.path.join(TMP, name + ".gguf")
        run(VOLGA, "convert", folder, "-o", out, "--type", "f32", "-q")
        ids = [5, 262, 101, 266, 47, 258, 12, 99, 200, 33, 1, 259]
        npy = os.path.join(TMP, name + ".npy")
        run(VOLGA, "logits", out, "--ids", ",".join(map(str, ids)), "-o", npy)
        got, want = np.load(npy), hf_forward(cfg, W, ids)
        self.assertEqual(got.shape, want.shape)
        err = np.abs(got - want).max() / np.abs(want).max()
        self.assertLess(err, 1e-4, "%s: relative error %g" % (name, err))
        info = run(VOLGA, "info", out).stdout
        self.assertIn("tokenizer:     gpt2 (pre-tokenizer qwen2)", info)
        # The converted tokenizer splits words the way the tokenizer.json merges say.
        self.assertEqual(json.loads(run(VOLGA, "tokenize", out, " the", "--json").stdout), [258])
        return out

    def test_llama_f32_untied(self):
        self.check("llama", "LlamaForCausalLM", "F32", tied=False)

    def test_qwen2_f16_biases_tied(self):
        self.check("qwen2", "Qwen2ForCausalLM", "F16", tied=True)

    def test_qwen3_bf16_qk_norm_wide_heads(self):
        self.check("qwen3", "Qwen3ForCausalLM", "BF16", tied=True, head_dim=32)

    def test_quantized_targets_stay_close(self):
        folder, cfg, W = make_checkpoint("llama_q", "LlamaForCausalLM", "F32", 2, tied=False)
        ids = [5, 262, 101, 266, 47, 258]
        want = hf_forward(cfg, W, ids)
        for ty, tol in (("f16", 2e-3), ("q8_0", 3e-2)):
            out = os.path.join(TMP, "llama_q_%s.gguf" % ty)
            run(VOLGA, "convert", folder, "-o", out, "--type", ty, "-q")
            self.assertIn(ty, run(VOLGA, "info", out).stdout)
            npy = out + ".npy"
            run(VOLGA, "logits", out, "--ids", ",".join(map(str, ids)), "-o", npy)
            err = np.abs(np.load(npy) - want).max() / np.abs(want).max()
            self.assertLess(err, tol, "%s: relative error %g" % (ty, err))

    def expect_error(self, folder, needle):
        p = run(VOLGA, "convert", folder, "-o", os.path.join(TMP, "bad.gguf"), "-q", check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(needle, p.stderr)
        self.assertNotIn("Sanitizer", p.stderr)

    def test_bad_checkpoints(self):
        folder, _, _ = make_checkpoint("good", "LlamaForCausalLM", "F16", 3, tied=True)
        st = os.path.join(folder, "model.safetensors")
        data = open(st, "rb").read()

        def variant(name, mutate_bytes=None, mutate_cfg=None):
            d = os.path.join(TMP, name)
            shutil.copytree(folder, d)
            if mutate_bytes:
                with open(os.path.join(d, "model.safetensors"), "wb") as f:
                    f.write(mutate_bytes(data))
            if mutate_cfg:
                cfg = json.load(open(os.path.join(d, "config.json")))
                mutate_cfg(cfg)
                json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
            return d

        self.expect_error(variant("trunc", lambda b: b[:len(b) // 2]), "outside the file")
        self.expect_error(variant("hdr", lambda b: struct.pack("<Q", 1 << 40) + b[8:]), "header length")
        self.expect_error(variant("json", lambda b: b[:8] + b"{" * (len(b) - 8)), "not valid JSON")
        self.expect_error(variant("arch", mutate_cfg=lambda c: c.update(architectures=["GPTNeoXForCausalLM"])),
                          "cannot be converted")
        self.expect_error(variant("layers", mutate_cfg=lambda c: c.update(num_hidden_layers=3)),
                          "model.layers.2.input_layernorm.weight' is missing")
        self.expect_error(variant("dims", mutate_cfg=lambda c: c.update(intermediate_size=97)), "shape")
        self.expect_error(os.path.join(TMP, "no-such-folder"), "not a folder")

    def test_quantize_rejects_same_file_and_unknown_type(self):
        folder, _, _ = make_checkpoint("qz", "LlamaForCausalLM", "F32", 4, tied=True)
        out = os.path.join(TMP, "qz.gguf")
        run(VOLGA, "convert", folder, "-o", out, "-q")
        p = run(VOLGA, "quantize", out, out, "q8_0", check=False)
        self.assertNotEqual(p.returncode, 0)
        p = run(VOLGA, "quantize", out, out + ".x", "q3_xyz", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("q3_xyz", p.stderr)


if __name__ == "__main__":
    unittest.main()
