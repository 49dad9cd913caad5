"""Byte-level BPE for the demo model: trainer, encoder and tokenizer.json writer.

The tokenizer follows the Qwen2 conventions (GPT-2 byte-to-unicode alphabet,
Qwen2 pre-tokenizer regex, ChatML special tokens) so that Volga loads it
through the same code path as real Qwen tokenizers.

  /usr/bin/python3 tools/train_demo/bpe.py --data /tmp/demo/data --vocab 4096 --out DIR
"""
import argparse
import collections
import heapq
import json
import os
import sys
import unicodedata

import regex

PRETOKENIZE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
               r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

_pat = regex.compile(PRETOKENIZE)
NOPE = (1 << 30, None)
_special_pat = regex.compile("(" + "|".join(regex.escape(s) for s in SPECIALS) + ")")


def bytes_to_unicode():
    """GPT-2's reversible map from bytes to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def train(texts, vocab_size, log=sys.stderr):
    """Returns the merges as (left id, right id, result id); ids 0-255 are bytes.

    Two merge paths can spell the same bytes ("a"+"bc" and "ab"+"c"); the
    second reuses the first one's id, so every token's bytes are unique."""
    counts = collections.Counter()
    for t in texts:
        for piece in _special_pat.split(unicodedata.normalize("NFC", t)):
            if piece in SPECIALS:
                continue
            counts.update(_pat.findall(piece))
    words = [list(w.encode()) for w in counts]
    freq = list(counts.values())
    pairs = collections.Counter()
    where = collections.defaultdict(set)
    for i, w in enumerate(words):
        for a, b in zip(w, w[1:]):
            pairs[(a, b)] += freq[i]
            where[(a, b)].add(i)
    heap = [(-c, p) for p, c in pairs.items()]
    heapq.heapify(heap)
    merges = []
    tokens = [bytes([i]) for i in range(256)]
    ids = {b: i for i, b in enumerate(tokens)}
    n_tokens = vocab_size - len(SPECIALS)
    while len(tokens) < n_tokens and heap:
        c, p = heapq.heappop(heap)
        if pairs.get(p, 0) != -c:
            continue            # stale entry
        if -c < 2:
            break
        spelled = tokens[p[0]] + tokens[p[1]]
        new = ids.get(spelled)
        if new is None:
            new = ids[spelled] = len(tokens)
            tokens.append(spelled)
        merges.append((p[0], p[1], new))
        changed = collections.Counter()
        for i in where.pop(p, ()):
            w, f = words[i], freq[i]
            for a, b in zip(w, w[1:]):
                changed[(a, b)] -= f
            out, j = [], 0
            while j < len(w):
                if j + 1 < len(w) and w[j] == p[0] and w[j + 1] == p[1]:
                    out.append(new)
                    j += 2
                else:
                    out.append(w[j])
                    j += 1
            words[i] = out
            for a, b in zip(out, out[1:]):
                changed[(a, b)] += f
                where[(a, b)].add(i)
        for q, d in changed.items():
            if d == 0:
                continue
            pairs[q] += d
            if pairs[q] <= 0:
                del pairs[q]
            else:
                heapq.heappush(heap, (-pairs[q], q))
        pairs.pop(p, None)
        if len(merges) % 500 == 0:
            print(f"  {len(tokens)}/{n_tokens} tokens", file=log, flush=True)
    return merges


class Tokenizer:
    def __init__(self, merges):
        self.merges = merges
        self.rank = {(a, b): (i, r) for i, (a, b, r) in enumerate(merges)}
        self.n_base = 256 + len({r for _, _, r in merges})
        self.special = {s: self.n_base + i for i, s in enumerate(SPECIALS)}
        self.cache = {}

    def _word(self, w):
        ids = self.cache.get(w)
        if ids is not None:
            return ids
        ids = list(w.encode())
        while len(ids) > 1:
            best = min(range(len(ids) - 1), key=lambda j: self.rank.get((ids[j], ids[j + 1]), NOPE))
            rank, r = self.rank.get((ids[best], ids[best + 1]), NOPE)
            if r is None:
                break
            ids[best:best + 2] = [r]
        if len(self.cache) < 1_000_000:
            self.cache[w] = ids
        return ids

    def encode(self, text):
        out = []
        for piece in _special_pat.split(unicodedata.normalize("NFC", text)):
            if piece in self.special:
                out.append(self.special[piece])
            elif piece:
                for w in _pat.findall(piece):
                    out.extend(self._word(w))
        return out

    def token_bytes(self):
        tb = [bytes([i]) for i in range(256)]
        for a, b, r in self.merges:
            if r == len(tb):
                tb.append(tb[a] + tb[b])
        return tb

    def save(self, out_dir):
        b2u = bytes_to_unicode()
        tb = self.token_bytes()
        to_str = lambda b: "".join(b2u[x] for x in b)
        vocab = {to_str(b): i for i, b in enumerate(tb)}
        merges = [f"{to_str(tb[a])} {to_str(tb[b])}" for a, b, _ in self.merges]
        added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                  "normalized": False, "special": True} for s, i in self.special.items()]
        tok = {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": added,
            "normalizer": {"type": "NFC"},
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": PRETOKENIZE}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
            "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                               "use_regex": False},
            "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                      "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                      "ignore_merges": False, "vocab": vocab, "merges": merges},
        }
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(tok, f, ensure_ascii=False)
        cfg = {
            "model_max_length": 512,
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": None,
            "eos_token": "<|im_end|>",
            "pad_token": "<|endoftext|>",
            "add_bos_token": False,
            "add_eos_token": False,
            "chat_template": CHAT_TEMPLATE,
            "added_tokens_decoder": {str(a["id"]): {k: v for k, v in a.items() if k != "id"} for a in added},
        }
        with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(cfg, f, ensure_ascii=False, indent=1)

    @staticmethod
    def load(out_dir):
        with open(os.path.join(out_dir, "tokenizer.json"), encoding="utf-8") as f:
            tok = json.load(f)
        vocab = tok["model"]["vocab"]
        merges = []
        for m in tok["model"]["merges"]:
            a, b = m.split(" ")
            merges.append((vocab[a], vocab[b], vocab[a + b]))
        return Tokenizer(merges)


def read_texts(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)["text"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="folder with train.jsonl (from corpus.py)")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    merges = train(read_texts(os.path.join(a.data, "train.jsonl")), a.vocab)
    Tokenizer(merges).save(a.out)
    print(f"wrote {a.out}/tokenizer.json: {Tokenizer(merges).n_base + len(SPECIALS)} tokens")


if __name__ == "__main__":
    main()
