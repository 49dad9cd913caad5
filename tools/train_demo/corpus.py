#!/usr/bin/python3
"""The demo model's training text, built from Debian packages.

English, Russian and Chinese come from the `fortunes`, `fortunes-ru` and
`fortunes-zh` collections; French from the manual pages of `manpages-fr`
(roff markup stripped). A fixed share of documents is also written as short
ChatML conversations (a question in the document's language, the document as
the answer), so that `volga chat` with the demo model answers in kind.

Every document goes to the held-out split or the training split by a hash of
its text, so the split does not depend on file order or on the machine.

Needs only the standard library:
    apt-get install fortunes fortunes-ru fortunes-zh manpages-fr
    /usr/bin/python3 tools/train_demo/corpus.py --out DIR
writes DIR/train.jsonl, DIR/heldout.jsonl (one {"lang", "text"} per line)
and DIR/heldout.txt (the held-out documents as plain text, for `volga perplexity`).
"""
import argparse
import gzip
import hashlib
import json
import os
import re
import sys
import unicodedata

FORTUNES = "/usr/share/games/fortunes"
MAN_FR = "/usr/share/man/fr"
HELDOUT_PERCENT = 3
CHAT_PERCENT = 12
MAX_DOC_CHARS = 1500
SKIP_SECTIONS = {"SYNOPSIS", "VOIR AUSSI", "TRADUCTION", "AUTEURS", "AUTEUR", "COPYRIGHT", "EXEMPLES", "EXEMPLE", "COLOPHON", "FICHIERS"}

PROMPTS = {
    "en": ["Tell me something wise.", "Give me a quote.", "Say something funny.", "What is your fortune for today?"],
    "ru": ["Расскажи что-нибудь мудрое.", "Скажи афоризм.", "Пошути, пожалуйста.", "Что меня ждёт сегодня?"],
    "zh": ["给我讲一句名言。", "说点有智慧的话。", "讲个故事吧。", "今天的运势如何？"],
}


def fail(msg):
    sys.exit(f"corpus.py: {msg}")


def read_fortune_file(path):
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", errors="replace")
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # the Chinese collection colours its attributions
    for doc in re.split(r"^%\s*$", text, flags=re.M):
        doc = doc.strip("\n")
        if doc.strip() and len(doc) <= MAX_DOC_CHARS:
            yield doc.rstrip()


def fortune_docs(lang):
    if lang == "ru":
        folder = os.path.join(FORTUNES, "ru")
        names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
        files = [os.path.join(folder, n) for n in names]
    else:
        names = sorted(os.listdir(FORTUNES)) if os.path.isdir(FORTUNES) else []
        files = [os.path.join(FORTUNES, n) for n in names]
        zh = {"chinese", "tang300", "song100"}
        skip = {"art", "ascii-art"}  # pictures, not prose
        files = [p for p in files if os.path.basename(p) not in skip and (os.path.basename(p) in zh) == (lang == "zh")]
    files = [p for p in files if os.path.isfile(p) and not os.path.islink(p) and not p.endswith(".dat")]
    if not files:
        fail(f"no {lang} fortunes under {FORTUNES}; install fortunes, fortunes-ru and fortunes-zh")
    for p in files:
        yield from read_fortune_file(p)


def roff_to_text(src):
    """Plain text of a manual page: macros dropped, font escapes removed, paragraphs joined."""
    out, para = [], []
    section = ""

    def flush():
        if para:
            out.append((section, " ".join(para)))
            para.clear()

    for line in src.splitlines():
        if line.startswith(".\\\"") or line.startswith("'\\\""):
            continue
        if line.startswith("."):
            macro = line[1:].split(" ", 1)
            name, arg = macro[0], macro[1] if len(macro) > 1 else ""
            if name in ("SH", "SS"):
                flush()
                section = arg.strip('"').strip()
            elif name in ("PP", "P", "LP", "TP", "IP", "sp", "br", "RS", "RE", "nf", "fi", "HP"):
                flush()
            elif name in ("B", "I", "BR", "IR", "RB", "RI", "BI", "IB") and arg:
                para.append(clean_roff(arg.replace('"', "")))
            continue
        text = clean_roff(line).strip()
        if text:
            para.append(text)
    flush()
    return out


ACCENTS = {"'": "\u0301", "`": "\u0300", "^": "\u0302", ":": "\u0308", ",": "\u0327"}
GLYPHS = {"aq": "'", "Aq": "'", "cq": "’", "oq": "‘", "em": "—", "en": "–", "hy": "-", "bu": "•", "Fo": "«",
          "Fc": "»", "rq": "”", "lq": "“", "co": "©", "at": "@", "rs": "\\", "oe": "œ", "OE": "Œ", "ae": "æ",
          "ss": "ß", "R\"": "”", "L\"": "“", "--": "—", "PI": "π", "*p": "π", "*W": "Ω"}


def glyph(name):
    if len(name) == 2 and name[0] in ACCENTS:
        return unicodedata.normalize("NFC", name[1] + ACCENTS[name[0]])
    return GLYPHS.get(name, "")


def clean_roff(s):
    s = re.sub(r"\\f(\[[^\]]*\]|\(..|.)", "", s)
    s = re.sub(r"\\\(([^ ]{2})", lambda m: glyph(m.group(1)), s)
    s = re.sub(r"\\\[([^\]]*)\]", lambda m: glyph(m.group(1)), s)
    s = re.sub(r"\\\*\(([^ ]{2})", lambda m: glyph(m.group(1)), s)
    s = re.sub(r"\\\*.", "", s)
    s = s.replace("\\-", "-").replace("\\&", "").replace("\\e", "\\").replace("\\ ", " ").replace("\\~", " ")
    s = re.sub(r"\\.", "", s)
    return s


def man_docs():
    if not os.path.isdir(MAN_FR):
        fail(f"no French manual pages under {MAN_FR}; install manpages-fr")
    for sec in sorted(os.listdir(MAN_FR)):
        folder = os.path.join(MAN_FR, sec)
        if not sec.startswith("man") or not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if not name.endswith(".gz") or os.path.islink(path):
                continue
            with gzip.open(path, "rb") as f:
                src = f.read().decode("utf-8", errors="replace")
            if src.startswith(".so "):
                continue
            paras = roff_to_text(src)
            command = name[:-3].rsplit(".", 1)[0]
            # NOM (the one-line summary) with DESCRIPTION makes the first document, answering
            # "what does this command do"; the other prose sections follow in further documents.
            summary = " ".join(p for sec, p in paras if sec.upper() == "NOM")
            first, rest = summary, []
            for section, p in paras:
                sec = section.upper()
                if sec in SKIP_SECTIONS or sec == "NOM" or len(re.findall(r"[^\W\d_]", p)) < 0.6 * len(p):
                    continue
                if sec == "DESCRIPTION" and not rest and len(first) + len(p) <= MAX_DOC_CHARS:
                    first += "\n\n" + p
                else:
                    rest.append(p)
            if summary and len(first) > 40:
                yield command, first.strip()
            chunk = ""
            for p in rest:
                if chunk and len(chunk) + len(p) > MAX_DOC_CHARS:
                    yield None, chunk
                    chunk = ""
                chunk = (chunk + "\n\n" + p).strip()[:MAX_DOC_CHARS]
            if len(chunk) > 40:
                yield None, chunk


def bucket(text):
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) % 100


def chat(question, answer):
    return f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n{answer}<|im_end|>\n"


def build(out_dir, max_mb):
    docs = []
    for lang in ("en", "ru", "zh"):
        for d in fortune_docs(lang):
            docs.append((lang, d, None))
    for command, text in man_docs():
        docs.append(("fr", text, f"Que fait la commande {command} ?" if command else None))
    seen, train, held = set(), [], []
    budget = {lang: max_mb * 1_000_000 // 4 for lang in ("en", "ru", "zh", "fr")}
    for lang, text, question in docs:
        if text in seen:
            continue
        seen.add(text)
        size = len(text.encode("utf-8"))
        if budget[lang] < size:
            continue
        budget[lang] -= size
        b = bucket(text)
        if b < HELDOUT_PERCENT:
            held.append({"lang": lang, "text": text})
            continue
        if b >= 100 - CHAT_PERCENT:
            prompts = PROMPTS.get(lang)
            q = question if lang == "fr" else prompts[b % len(prompts)]
            if q and len(text) < 1000:
                train.append({"lang": lang, "text": chat(q, text), "chat": True})
                continue
        train.append({"lang": lang, "text": text})
    os.makedirs(out_dir, exist_ok=True)
    for name, rows in (("train.jsonl", train), ("heldout.jsonl", held)):
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    with open(os.path.join(out_dir, "heldout.txt"), "w", encoding="utf-8") as f:
        f.write("\n\n".join(r["text"] for r in held) + "\n")
    stats = {}
    for r in train:
        s = stats.setdefault(r["lang"], [0, 0])
        s[0] += 1
        s[1] += len(r["text"].encode("utf-8"))
    for lang, (n, size) in sorted(stats.items()):
        print(f"train {lang}: {n} documents, {size / 1e6:.2f} MB")
    print(f"held out: {len(held)} documents, {sum(len(r['text'].encode()) for r in held) / 1e6:.2f} MB")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--max-mb", type=int, default=16, help="total text budget in MB, shared equally by the 4 languages")
    a = ap.parse_args()
    build(a.out, a.max_mb)


if __name__ == "__main__":
    main()
