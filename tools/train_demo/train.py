"""Trains the Volga demo model on the corpus from corpus.py, on the CPU.

  /usr/bin/python3 tools/train_demo/train.py --data /tmp/demo/data --out /tmp/demo/hf

Writes a Hugging Face style folder (config.json, model.safetensors,
tokenizer.json, tokenizer_config.json) that `volga convert` turns into GGUF,
and train_log.csv (step, tokens seen, train loss, held-out loss, seconds).
The run is deterministic for a given --seed and thread count.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bpe import SPECIALS, Tokenizer, read_texts, train as train_bpe  # noqa: E402
from model import Config, LlamaForCausalLM, save_safetensors  # noqa: E402


def encode_file(tok, path):
    eot = tok.special[SPECIALS[0]]
    out = []
    for text in read_texts(path):
        out.extend(tok.encode(text))
        out.append(eot)
    return np.array(out, dtype=np.uint16)


def export(model, tok_dir, out):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(model.config.to_hf(), f, indent=1)
    save_safetensors(os.path.join(out, "model.safetensors"), model.state_dict())
    for name in ("tokenizer.json", "tokenizer_config.json"):
        with open(os.path.join(tok_dir, name), "rb") as src, open(os.path.join(out, name), "wb") as dst:
            dst.write(src.read())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="folder written by corpus.py")
    ap.add_argument("--out", required=True, help="output folder (Hugging Face layout)")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--ffn", type=int, default=768)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--ctx", type=int, default=256, help="training window in tokens")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=1800)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    t0 = time.time()

    tok_dir = os.path.join(a.out, "tokenizer")
    if not os.path.exists(os.path.join(tok_dir, "tokenizer.json")):
        print("training the tokenizer ...", flush=True)
        Tokenizer(train_bpe(read_texts(os.path.join(a.data, "train.jsonl")), a.vocab)).save(tok_dir)
    tok = Tokenizer.load(tok_dir)
    cache = os.path.join(a.out, "tokens.npz")
    if os.path.exists(cache):
        z = np.load(cache)
        train_ids, held_ids = z["train"], z["heldout"]
    else:
        print("tokenizing ...", flush=True)
        train_ids = encode_file(tok, os.path.join(a.data, "train.jsonl"))
        held_ids = encode_file(tok, os.path.join(a.data, "heldout.jsonl"))
        np.savez(cache, train=train_ids, heldout=held_ids)
    print(f"{len(train_ids)} training tokens, {len(held_ids)} held out ({time.time() - t0:.0f} s)", flush=True)

    eos = tok.special["<|im_end|>"]
    c = Config(vocab_size=a.vocab, hidden_size=a.dim, intermediate_size=a.ffn, num_hidden_layers=a.layers,
               num_attention_heads=a.heads, num_key_value_heads=a.kv_heads,
               max_position_embeddings=max(512, a.ctx), eos_token_id=eos)
    model = LlamaForCausalLM(c)
    model.init_weights(a.seed)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f} M parameters", flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95))
    rng = np.random.default_rng(a.seed)
    train_t = torch.from_numpy(train_ids.astype(np.int64))
    held_t = torch.from_numpy(held_ids.astype(np.int64))
    n_eval = min(32, (len(held_ids) - 1) // a.ctx)
    eval_x = torch.stack([held_t[i * a.ctx:(i + 1) * a.ctx + 1] for i in range(n_eval)])

    def held_loss():
        model.eval()
        with torch.no_grad():
            lo = model(eval_x[:, :-1])
            loss = F.cross_entropy(lo.reshape(-1, a.vocab), eval_x[:, 1:].reshape(-1)).item()
        model.train()
        return loss

    log = open(os.path.join(a.out, "train_log.csv"), "w")
    log.write("step,tokens,train_loss,heldout_loss,seconds\n")
    t_train = time.time()
    avg = None
    for step in range(1, a.steps + 1):
        if step <= a.warmup:
            lr = a.lr * step / a.warmup
        else:
            p = (step - a.warmup) / max(1, a.steps - a.warmup)
            lr = a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))
        for g in opt.param_groups:
            g["lr"] = lr
        starts = rng.integers(0, len(train_ids) - a.ctx - 1, a.batch)
        x = torch.stack([train_t[s:s + a.ctx + 1] for s in starts])
        logits = model(x[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, a.vocab), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        avg = loss.item() if avg is None else 0.95 * avg + 0.05 * loss.item()
        if step % a.eval_every == 0 or step == a.steps:
            hl = held_loss()
            el = time.time() - t_train
            log.write(f"{step},{step * a.batch * a.ctx},{avg:.4f},{hl:.4f},{el:.0f}\n")
            log.flush()
            print(f"step {step}/{a.steps}  train {avg:.3f}  held-out {hl:.3f}  "
                  f"{step * a.batch * a.ctx / el:.0f} tok/s  {el / 60:.1f} min", flush=True)
            export(model, tok_dir, a.out)
    print(f"done in {(time.time() - t0) / 60:.1f} min; wrote {a.out}", flush=True)


if __name__ == "__main__":
    main()
