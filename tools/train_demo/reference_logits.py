"""PyTorch logits of the demo model: the oracle that `volga logits` on the
converted GGUF is checked against (tests/e2e/test_demo.py).

  /usr/bin/python3 tools/train_demo/reference_logits.py HF_DIR --text "..." --out ref.npz [--round f16]
  /usr/bin/python3 tools/train_demo/reference_logits.py HF_DIR --ids 1,2,3 --out ref.npy

With --text the ids come from the Python tokenizer (bpe.py) and the .npz
holds text, ids and logits. --round f16 rounds every weight matrix to float16
first, as an F16 GGUF stores it.
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bpe import Tokenizer  # noqa: E402
from model import load_pretrained  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--ids", help="comma-separated token ids")
    src.add_argument("--text", help="text to tokenize with the model's tokenizer")
    ap.add_argument("--out", required=True)
    ap.add_argument("--round", choices=["none", "f16"], default="none")
    a = ap.parse_args()
    torch.set_num_threads(os.cpu_count())
    m = load_pretrained(a.folder)
    if a.round == "f16":
        with torch.no_grad():
            for p in m.parameters():
                if p.dim() >= 2:
                    p.copy_(p.half().float())
    ids = [int(x) for x in a.ids.split(",")] if a.ids else Tokenizer.load(a.folder).encode(a.text)
    with torch.no_grad():
        logits = m(torch.tensor([ids]))[0].numpy().astype(np.float32)
    if a.text is not None:
        np.savez(a.out, text=np.array(a.text), ids=np.array(ids, dtype=np.int32), logits=logits)
    else:
        np.save(a.out, logits)


if __name__ == "__main__":
    main()
