#!/usr/bin/python3
"""Writes ~1 MB of mixed-language text (English licence text, the shared
tokenizer test inputs and chat templates, Russian, Chinese and French
sentences) for tokenizer throughput measurements.
    bench/make_mixed_text.py OUT [BYTES]"""
import glob
import os
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
shared = os.path.join(root, "..", "shared", "testdata")
parts = [open("/usr/share/common-licenses/GPL-3", encoding="utf-8").read()]
for f in sorted(glob.glob(os.path.join(shared, "vocab", "*.inp")) + glob.glob(os.path.join(shared, "templates", "*"))):
    parts.append(open(f, encoding="utf-8", errors="replace").read())
parts.append("Съешь же ещё этих мягких французских булок, да выпей чаю. Москва стоит на берегу реки. " * 40)
parts.append("今天天气很好，我们去公园散步。中国人民和俄罗斯人民是好朋友。人工智能正在改变世界。" * 40)
parts.append("Portez ce vieux whisky au juge blond qui fume. L'été dernier, nous sommes allés à la mer. " * 40)
blob = "\n".join(parts)
size = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
out = ""
while len(out.encode()) < size:
    out += blob
with open(sys.argv[1], "w", encoding="utf-8") as f:
    f.write(out.encode()[:size].decode("utf-8", "ignore"))
