"""`volga index` from outside: a small multilingual corpus written here
(Russian, Chinese, French, English documents on distinct topics, as text,
Markdown, HTML and PDF), indexed with an embedding model that separates
topics: a synthetic bert with the real bge WordPiece vocabulary (read from
../shared/testdata at test time) whose weights tools/retrieval/bow_embedder.py
sets so that mean pooling gives a bag-of-words vector. The oracle is the
corpus itself: each query uses words of exactly one document, which must
come first.

Covers: a build from scratch (twice, same results), an unchanged file
skipped, a changed file replaced, a removed file gone, searches in new
processes (restarts), a corrupt database or vectors file refused and left
unchanged, a broken PDF skipped with a warning while the rest is indexed,
another model refused.

Run through ctest (VOLGA_BIN, VOLGA_SYNTH, VOLGA_ROOT) with /usr/bin/python3."""
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import unittest

VOLGA = os.environ.get("VOLGA_BIN", "build/bin/volga")
SYNTH = os.environ.get("VOLGA_SYNTH", "build/bin/volga-synth")
ROOT = os.environ.get("VOLGA_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BGE_VOCAB = os.path.join(ROOT, "..", "shared", "testdata", "vocab", "ggml-vocab-bert-bge.gguf")
BOW = os.path.join(ROOT, "tools", "retrieval", "bow_embedder.py")
HAVE_PDFTOTEXT = shutil.which("pdftotext") is not None

DOCS = {
    "en_astronomy.txt": "Astronomers point large telescopes at distant galaxies. A telescope mirror gathers starlight, "
                        "and spectra of each galaxy reveal redshift. Planets orbit stars; comets and asteroids cross "
                        "the solar system.\n\nObservatories sit on dark mountains far from city lights.",
    "en_baking.md": "# Baking bread\n\nMix **flour**, water, salt and yeast into a dough. Knead the dough, let the "
                    "yeast rise, then bake the loaf in a hot oven until the crust is golden. See "
                    "[the bakery guide](http://example.invalid/bakery).\n",
    "ru_rivers.txt": "Волга — самая длинная река Европы. Судоходство по реке связывает города, баржи везут зерно и "
                     "лес. Плотины и водохранилища изменили течение реки, рыбаки ловят осетра в дельте.",
    "ru_chess.html": "<html><head><title>Шахматы</title><script>var decoy = 'telescope galaxy redshift';</script>"
                     "<style>p { color: red }</style></head><body><h1>Шахматы</h1><p>Гроссмейстер двинул ферзя, "
                     "ладья защищает короля. Дебют, эндшпиль и цейтнот&nbsp;&mdash; слова шахматиста.</p>"
                     "<!-- comment about baking bread --><p>Турнир по шахматам &amp; блиц.</p></body></html>",
    "zh_tea.txt": "绿茶和红茶都是中国的名茶。泡茶时先用热水温杯，再放入茶叶。龙井茶产于杭州西湖，普洱茶产于云南。",
    "zh_railway.txt": "高铁列车在铁路上高速行驶。北京到上海的高速铁路全长一千三百公里，车站里旅客排队检票上车。",
    "fr_wine.txt": "Le vigneron récolte le raisin pendant les vendanges. Le vin rouge vieillit en fût de chêne dans "
                   "la cave, et les vignobles de Bordeaux et de Bourgogne sont célèbres.",
    "fr_sailing.txt": "Le voilier quitte le port quand le vent se lève. Le marin règle la voile et la barre, le bateau "
                      "navigue vers le phare au large de la Bretagne.",
}
QUERIES = [
    ("telescope galaxy redshift", "en_astronomy.txt"),
    ("bake bread dough yeast oven", "en_baking.md"),
    ("судоходство по реке Волга", "ru_rivers.txt"),
    ("гроссмейстер ферзь шахматы", "ru_chess.html"),
    ("泡茶 绿茶 茶叶", "zh_tea.txt"),
    ("高铁 铁路 列车", "zh_railway.txt"),
    ("vin raisin vendanges vignobles", "fr_wine.txt"),
    ("voilier vent voile marin", "fr_sailing.txt"),
]
PDF_TEXT = "Glaciers carve fjords; moraines and icebergs mark retreating glaciers."


def minimal_pdf(text):
    """A one-page PDF with `text` in Helvetica, offsets computed (PDF 1.4 syntax)."""
    stream = ("BT /F1 12 Tf 72 720 Td (%s) Tj ET" % text).encode("latin-1")
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def volga(*args, check=True):
    p = subprocess.run([VOLGA, *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError("volga %s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr))
    return p


def tree_digest(d):
    out = {}
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), "rb") as f:
            out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


class IndexEndToEnd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(BGE_VOCAB):
            raise unittest.SkipTest("../shared/testdata/vocab/ggml-vocab-bert-bge.gguf is missing")
        cls.tmp = tempfile.mkdtemp(prefix="volga-index-")
        cls.model = os.path.join(cls.tmp, "bow.gguf")
        subprocess.run([SYNTH, "-q", "-o", cls.model, "--arch", "bert", "--vocab-gguf", BGE_VOCAB, "--pooling",
                        "mean", "--n-embd", "256", "--type", "f32"], check=True)
        subprocess.run(["/usr/bin/python3", BOW, cls.model], check=True)
        cls.corpus = os.path.join(cls.tmp, "corpus")
        os.makedirs(os.path.join(cls.corpus, "sub"))
        for name, text in DOCS.items():
            with open(os.path.join(cls.corpus, "sub" if name.startswith("zh") else "", name), "w") as f:
                f.write(text)
        with open(os.path.join(cls.corpus, "ignored.bin"), "wb") as f:
            f.write(b"\x00\x01 telescope galaxy")  # unknown extension in a directory: not indexed
        if HAVE_PDFTOTEXT:
            with open(os.path.join(cls.corpus, "glaciers.pdf"), "wb") as f:
                f.write(minimal_pdf(PDF_TEXT))
            with open(os.path.join(cls.corpus, "broken.pdf"), "wb") as f:
                f.write(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage, no xref, no trailer\n")
        cls.index = os.path.join(cls.tmp, "idx")
        cls.add_output = volga("index", "add", cls.index, cls.corpus, "--model", cls.model, "-t", "2")

    def path(self, name):
        return os.path.join(self.corpus, "sub" if name.startswith("zh") else "", name)

    def search(self, query, index=None, k=3, *extra):
        p = volga("index", "search", index or self.index, query, "-k", str(k), "--json", "-t", "2", *extra)
        return json.loads(p.stdout)["hits"]

    def assert_first(self, query, name, index=None):
        hits = self.search(query, index)
        self.assertTrue(hits, query)
        self.assertEqual(hits[0]["source"], self.path(name), "%s -> %s" % (query, [h["source"] for h in hits]))
        if len(hits) > 1:
            self.assertGreater(hits[0]["score"], hits[1]["score"])

    def test_1_queries_find_their_document(self):
        out = self.add_output.stdout
        for name in DOCS:
            self.assertIn("added     " + self.path(name), out)
        self.assertNotIn("ignored.bin", out)
        for query, name in QUERIES:
            self.assert_first(query, name)

    def test_2_html_markup_and_scripts_are_not_text(self):
        hits = self.search("гроссмейстер ферзь шахматы", k=1)
        text = hits[0]["text"]
        self.assertIn("Гроссмейстер двинул ферзя", text)
        self.assertIn("цейтнот \u2014 слова", text)  # &nbsp;&mdash; decoded
        self.assertIn("шахматам & блиц", text)
        for leaked in ("telescope", "decoy", "color", "<p>", "baking"):
            self.assertNotIn(leaked, text)
        md = self.search("bake bread dough yeast oven", k=1)[0]["text"]
        self.assertNotIn("http://", md)
        self.assertNotIn("**", md)

    @unittest.skipUnless(HAVE_PDFTOTEXT, "poppler-utils (pdftotext) is not installed")
    def test_3_pdf_indexed_and_broken_pdf_skipped(self):
        self.assertIn("skipped " + os.path.join(self.corpus, "broken.pdf"), self.add_output.stderr)
        self.assertIn("pdftotext", self.add_output.stderr)
        hits = self.search("glaciers fjords moraines icebergs")
        self.assertEqual(hits[0]["source"], os.path.join(self.corpus, "glaciers.pdf"))
        self.assertIn("Glaciers carve fjords", hits[0]["text"])

    def test_4_rebuilt_from_scratch_gives_the_same_answers(self):
        other = os.path.join(self.tmp, "idx-again")
        volga("index", "add", other, self.corpus, "--model", self.model, "-t", "2")
        for query, name in QUERIES:
            a, b = self.search(query), self.search(query, other)
            self.assertEqual([(h["source"], h["chunk"], h["text"]) for h in a],
                             [(h["source"], h["chunk"], h["text"]) for h in b])
            for x, y in zip(a, b):
                self.assertAlmostEqual(x["score"], y["score"], places=6)

    def test_5_long_documents_are_chunked_utf8_safe(self):
        idx = os.path.join(self.tmp, "idx-chunks")
        long_dir = os.path.join(self.tmp, "long")
        os.makedirs(long_dir, exist_ok=True)
        ru = " ".join("Предложение номер %d о реке Волге и её притоках." % i for i in range(60))
        zh = "".join("第%d句话讲的是长江和黄河的水文。" % i for i in range(60))
        for name, text in (("ru_long.txt", ru), ("zh_long.txt", zh)):
            with open(os.path.join(long_dir, name), "w") as f:
                f.write(text)
        volga("index", "add", idx, long_dir, "--model", self.model, "--chunk-tokens", "48", "--overlap", "8")
        listing = json.loads(volga("index", "list", idx, "--json").stdout)
        for doc in listing["documents"]:
            self.assertGreater(doc["chunks"], 5, doc)
        hits = self.search("长江 黄河 水文", idx, k=50)
        self.assertTrue(all(h["source"].endswith("zh_long.txt") for h in hits[:5]))
        texts = [h["text"] for h in self.search("Волге притоках", idx, k=100) if h["source"].endswith("ru_long.txt")]
        for t in texts:  # whole characters at both ends, and sentence ends preferred
            t.encode("utf-8")
            self.assertNotIn("\ufffd", t)
        self.assertTrue(any(t.endswith(".") for t in texts))

    def test_6_unchanged_skipped_changed_replaced_removed_gone(self):
        idx = os.path.join(self.tmp, "idx-update")
        shutil.copytree(self.index, idx)
        out = volga("index", "add", idx, self.corpus).stdout  # the model is remembered
        self.assertNotIn("added", out)
        self.assertIn("unchanged " + self.path("fr_wine.txt"), out)
        with open(self.path("fr_wine.txt"), "w") as f:
            f.write("Le fromager affine le camembert et le roquefort; le lait de brebis devient fromage en cave.")
        try:
            out = volga("index", "add", idx, self.path("fr_wine.txt")).stdout
            self.assertIn("updated   " + self.path("fr_wine.txt"), out)
            self.assert_first("fromage camembert roquefort lait", "fr_wine.txt", idx)
            hits = self.search("vin raisin vendanges vignobles", idx)
            self.assertNotIn("vendanges", " ".join(h["text"] for h in hits))
        finally:
            with open(self.path("fr_wine.txt"), "w") as f:
                f.write(DOCS["fr_wine.txt"])
        before = json.loads(volga("index", "list", idx, "--json").stdout)
        out = volga("index", "remove", idx, os.path.join(self.corpus, "sub")).stdout
        self.assertIn("removed " + self.path("zh_tea.txt"), out)
        self.assertIn("removed " + self.path("zh_railway.txt"), out)
        after = json.loads(volga("index", "list", idx, "--json").stdout)  # a new process: the index reopened
        self.assertEqual(len(after["documents"]), len(before["documents"]) - 2)
        sources = [h["source"] for h in self.search("泡茶 绿茶 茶叶", idx, k=20)]
        self.assertNotIn(self.path("zh_tea.txt"), sources)
        self.assertNotIn(self.path("zh_railway.txt"), sources)
        self.assert_first("судоходство по реке Волга", "ru_rivers.txt", idx)
        self.assertEqual(volga("index", "remove", idx, self.path("zh_tea.txt"), check=False).returncode, 1)

    def corrupt_and_check(self, victim, damage):
        idx = os.path.join(self.tmp, "idx-corrupt")
        shutil.rmtree(idx, ignore_errors=True)
        shutil.copytree(self.index, idx)
        names = os.listdir(idx)
        target = os.path.join(idx, next(n for n in names if n.startswith(victim)))
        damage(target)
        before = tree_digest(idx)
        for args in (["search", idx, "galaxy"], ["list", idx], ["add", idx, self.path("en_astronomy.txt")],
                     ["remove", idx, self.path("en_astronomy.txt")]):
            p = volga("index", *args, check=False)
            self.assertEqual(p.returncode, 1, (args, p.stderr))
            self.assertIn("volga: error:", p.stderr)
            self.assertTrue("corrupt" in p.stderr or "not a volga index" in p.stderr, p.stderr)
            self.assertEqual(tree_digest(idx), before, args)

    def test_7_corrupt_vectors_file_is_refused_and_kept(self):
        def flip(path):
            with open(path, "r+b") as f:
                f.seek(os.path.getsize(path) // 2)
                b = f.read(1)
                f.seek(-1, 1)
                f.write(bytes([b[0] ^ 0x55]))
        self.corrupt_and_check("vectors-", flip)

    def test_8_corrupt_database_is_refused_and_kept(self):
        def scribble(path):
            with open(path, "r+b") as f:
                f.seek(100)
                f.write(b"\xde\xad\xbe\xef" * 1024)
        self.corrupt_and_check("index.sqlite", scribble)

        def garbage(path):
            with open(path, "wb") as f:
                f.write(b"this is not a database at all" * 100)
        self.corrupt_and_check("index.sqlite", garbage)

    def test_9_other_model_and_bad_input_refused(self):
        other = os.path.join(self.tmp, "other.gguf")
        subprocess.run([SYNTH, "-q", "-o", other, "--arch", "bert", "--vocab-gguf", BGE_VOCAB, "--pooling", "mean"],
                       check=True)
        p = volga("index", "search", self.index, "galaxy", "--model", other, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("built with the embedding model bow.gguf", p.stderr)
        p = volga("index", "search", os.path.join(self.tmp, "nope"), "galaxy", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("not a volga index", p.stderr)
        p = volga("index", "search", self.index, "   ", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("query is empty", p.stderr)
        p = volga("index", "add", os.path.join(self.tmp, "idx-new"), self.corpus, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("--model", p.stderr)
        p = volga("index", "add", self.index, os.path.join(self.tmp, "missing.txt"), check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("does not exist", p.stderr)


if __name__ == "__main__":
    unittest.main()
