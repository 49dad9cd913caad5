#!/usr/bin/python3
"""Writes a charsmap_fuzz seed holding SentencePiece's real nmt_nfkc charsmap:
a tiny unigram model is trained with Debian's python3-sentencepiece and its
NormalizerSpec.precompiled_charsmap is taken out of the model file.
    charsmap_seed.py OUT_FILE
Seed layout (see charsmap_fuzz.cpp): one byte N, N bytes of text, the charsmap."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import sentencepiece  # noqa: E402
from test_tokenizers_wpm_ugm import precompiled_charsmap  # noqa: E402

TEXT = "Hé ＡＢＣ ﬁ ½\u00a0x\u200by  Ёж 今天".encode("utf-8")

with tempfile.TemporaryDirectory() as tmp:
    corpus = os.path.join(tmp, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write("the quick brown fox jumps over the lazy dog\nСъешь же ещё этих мягких булок\n今天天气很好\n" * 20)
    sentencepiece.SentencePieceTrainer.train(input=corpus, model_prefix=os.path.join(tmp, "m"), vocab_size=60,
                                             model_type="unigram", hard_vocab_limit=False, minloglevel=2)
    sp = sentencepiece.SentencePieceProcessor(model_file=os.path.join(tmp, "m.model"))
    with open(sys.argv[1], "wb") as out:
        out.write(bytes([len(TEXT)]) + TEXT + precompiled_charsmap(sp))
