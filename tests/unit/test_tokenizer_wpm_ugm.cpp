// WordPiece and SentencePiece-unigram tokenizers on small hand-made
// vocabularies (each expectation follows from the algorithm by hand), the
// precompiled charsmap parser on well-formed and hostile blobs, and GGUF
// round trips of both vocabularies. Id-exactness against the reference
// tokenizers is tests/unit/test_vocab_vectors.cpp (bert-bge) and
// tests/e2e/test_tokenizers_wpm_ugm.py (SentencePiece, transformers.js).
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "format/gguf.h"
#include "tokenizer/charsmap.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"
#include "util/error.h"

#ifndef VOLGA_TESTDATA_DIR
#error "VOLGA_TESTDATA_DIR must be defined by the build"
#endif

namespace volga {
namespace {

const std::string kWs = "\xE2\x96\x81";  // ▁

std::string le32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[size_t(i)] = static_cast<char>((v >> (8 * i)) & 0xFF);
  return s;
}

// A one-rule charsmap built by hand: "A" -> "a". Root base 0x40; the node for
// 'A' is 0x40 ^ 0x41 = 1 (label 'A', leaf, base 3); its value node 1 ^ 3 = 2
// holds replacement offset 0 (bit 31 marks a value node).
std::string one_rule_charsmap(const std::string& replacements = std::string("a\0", 2)) {
  const uint32_t root = 0x40u << 10, node = (3u << 10) | (1u << 8) | 0x41u, value = 0x80000000u;
  return le32(12) + le32(root) + le32(node) + le32(value) + replacements;
}

std::string error_of(const std::string& blob) {
  try {
    PrecompiledCharsmap m(blob);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(PrecompiledCharsmap, HandBuiltRuleMatchesLongestPrefixOnly) {
  PrecompiledCharsmap m(one_rule_charsmap());
  std::string_view repl;
  EXPECT_EQ(m.match("xAy", 1, &repl), 1u);
  EXPECT_EQ(repl, "a");
  EXPECT_EQ(m.match("xAy", 0, &repl), 0u);
  EXPECT_EQ(m.match("xAy", 3, &repl), 0u);  // at the end: nothing to match
  EXPECT_EQ(m.match(std::string("\0A", 2), 0, &repl), 0u);  // NUL never matches
  EXPECT_TRUE(PrecompiledCharsmap("").empty());
}

TEST(PrecompiledCharsmap, HostileBlobsAreRefusedWithTheDefectNamed) {
  EXPECT_NE(error_of("abc").find("truncated"), std::string::npos);
  EXPECT_NE(error_of(le32(7) + "1234567x").find("multiple of 4"), std::string::npos);
  EXPECT_NE(error_of(le32(0) + "x").find("multiple of 4"), std::string::npos);
  EXPECT_NE(error_of(le32(400) + "short").find("truncated"), std::string::npos);
  EXPECT_NE(error_of(le32(0xFFFFFFFCu) + "x").find("truncated"), std::string::npos);
  // The trie fills the whole blob: no room for replacement strings.
  EXPECT_NE(error_of(one_rule_charsmap("")).find("truncated"), std::string::npos);
  // The leaf's replacement is not NUL-terminated, or lies past the strings.
  EXPECT_NE(error_of(one_rule_charsmap("a")).find("not NUL-terminated"), std::string::npos);
  const uint32_t root = 0x40u << 10, node = (3u << 10) | (1u << 8) | 0x41u;
  EXPECT_NE(error_of(le32(12) + le32(root) + le32(node) + le32(0x80000000u | 99) + std::string("a\0", 2))
                .find("outside"),
            std::string::npos);
  // The leaf's value node lies past the trie.
  const uint32_t far_node = (0x40u << 10) | (1u << 8) | 0x41u;  // 1 ^ 0x40 = 65
  EXPECT_NE(error_of(le32(8) + le32(root) + le32(far_node) + std::string("a\0", 2)).find("past the trie"),
            std::string::npos);
  // A root whose children point back at it is walked once and accepted.
  const uint32_t loop = (1u << 10) | 0x40u;  // base 1: every child lookup lands on a unit of the wrong label
  EXPECT_EQ(error_of(le32(8) + le32(loop) + le32(loop) + "z"), "");
}

// --- unigram ---------------------------------------------------------------

VocabData small_unigram() {
  VocabData v;
  v.model = "t5";
  v.tokens = {"<pad>", "</s>", "<unk>", kWs, kWs + "a", "a", "b", "ab", kWs + "ab", "c", "<sep>"};
  v.scores = {0, 0, 0, -2.0f, -1.5f, -3.0f, -3.0f, -2.5f, -1.0f, -4.0f, 0};
  v.types.assign(v.tokens.size(), TokenType::Normal);
  v.types[0] = v.types[1] = TokenType::Control;
  v.types[2] = TokenType::Unknown;
  v.types[10] = TokenType::UserDefined;
  v.unk = 2;
  v.eos = 1;
  v.add_eos = true;
  v.add_space_prefix = true;
  v.remove_extra_whitespaces = true;
  return v;
}

std::vector<int32_t> ids(std::initializer_list<int32_t> l) { return l; }

TEST(UnigramTokenizer, BestScoringPathUnknownsAndSpecials) {
  auto tok = Tokenizer::create(small_unigram());
  EXPECT_EQ(tok->kind(), "SentencePiece unigram");
  // "▁ab" (-1.0) beats "▁a"+"b" (-4.5) and "▁"+"ab" (-4.5).
  EXPECT_EQ(tok->encode("ab", false), ids({8}));
  // "▁a" + "b" + "c": every split is scored; c is a piece of its own.
  EXPECT_EQ(tok->encode("abc", false), ids({8, 9}));
  // Unknown characters cost min score - 10 each and fuse into one <unk>.
  EXPECT_EQ(tok->encode("xy", false), ids({3, 2}));
  EXPECT_EQ(tok->encode("axyb", false), ids({4, 2, 6}));
  // Spaces: collapsed, leading/trailing dropped, ▁ before each word; </s> added.
  EXPECT_EQ(tok->encode("  ab   a ", true), ids({8, 4, 1}));
  EXPECT_EQ(tok->encode("", true), ids({1}));
  // User-defined pieces are cut out first (as llama.cpp does); the text after
  // one is a new fragment, so its word gets ▁ again.
  EXPECT_EQ(tok->encode("a<sep>b", false), ids({4, 10, 3, 6}));
  // Control texts are tokens only when special parsing is on.
  EXPECT_EQ(tok->encode("</s>", false, true), ids({1}));
  EXPECT_EQ(tok->encode("</s>", false, false), ids({3, 2}));
  EXPECT_EQ(tok->decode(tok->encode("ab a", true)), " ab a");
}

TEST(UnigramTokenizer, HuggingFaceMetaspaceKeepsOneTrailingSpace) {
  VocabData v = small_unigram();
  v.hf_metaspace = true;
  auto tok = Tokenizer::create(v);
  EXPECT_EQ(tok->encode("ab ", false), ids({8, 3}));
  EXPECT_EQ(tok->encode("  ab  a", false), ids({8, 4}));
  EXPECT_EQ(tok->encode(" ", false), ids({3}));
  EXPECT_EQ(tok->encode("", false), ids({}));
}

TEST(UnigramTokenizer, NoSpaceMergingKeepsEverySpace) {
  VocabData v = small_unigram();
  v.remove_extra_whitespaces = false;
  auto tok = Tokenizer::create(v);
  EXPECT_EQ(tok->encode("a  b", false), ids({4, 3, 3, 6}));
}

TEST(UnigramTokenizer, CharsmapRewritesBeforeSegmentation) {
  VocabData v = small_unigram();
  v.precompiled_charsmap = one_rule_charsmap();
  auto tok = Tokenizer::create(v);
  EXPECT_EQ(tok->encode("Ab", false), ids({8}));  // "A" -> "a"
  v.precompiled_charsmap = one_rule_charsmap("a");
  try {
    Tokenizer::create(v);
    ADD_FAILURE() << "a charsmap with an unterminated replacement was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("precompiled_charsmap"), std::string::npos);
  }
}

TEST(UnigramTokenizer, ByteFallbackWhenByteTokensExist) {
  VocabData v = small_unigram();
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    v.tokens.push_back(name);
    v.scores.push_back(0);
    v.types.push_back(TokenType::Byte);
  }
  auto tok = Tokenizer::create(v);
  const int32_t base = 11;
  // "é" = C3 A9 has no piece: its bytes, not <unk>.
  EXPECT_EQ(tok->encode("\xC3\xA9", false), ids({3, base + 0xC3, base + 0xA9}));
  EXPECT_EQ(tok->decode(tok->encode("a\xC3\xA9", false)), " a\xC3\xA9");
}

TEST(UnigramTokenizer, HostileVocabulariesLoad) {
  // A piece of a million bytes (the trie is built without recursion) and a
  // duplicated piece (the lower id wins, as in the id lookup).
  VocabData v = small_unigram();
  v.tokens.push_back(std::string(1000000, 'a'));
  v.tokens.push_back(kWs + "ab");
  v.scores.push_back(-1);
  v.scores.push_back(-0.5f);
  v.types.push_back(TokenType::Normal);
  v.types.push_back(TokenType::Normal);
  auto tok = Tokenizer::create(v);
  EXPECT_EQ(tok->encode("ab", false), ids({8}));
  EXPECT_EQ(tok->encode(std::string(2000, 'a'), false).size(), 2000u);  // "▁a" then "a" each
}

TEST(UnigramTokenizer, BadMetadataIsRefused) {
  VocabData v = small_unigram();
  v.scores.pop_back();
  EXPECT_THROW(Tokenizer::create(v), Error);
  v = small_unigram();
  v.unk = -1;
  EXPECT_THROW(Tokenizer::create(v), Error);
  v = small_unigram();
  v.scores[5] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(Tokenizer::create(v), Error);
}

// --- WordPiece -------------------------------------------------------------

VocabData small_wordpiece() {
  VocabData v;
  v.model = "bert";
  v.tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", kWs + "un", kWs + "unaffable", "aff", "able", kWs + "the",
              kWs + ",", kWs + "!", kWs + "cafe", kWs + "\xE4\xB8\xAD", kWs + "\xE6\x96\x87", "a", kWs + "x"};
  v.types.assign(v.tokens.size(), TokenType::Normal);
  for (int i = 0; i < 4; ++i) v.types[size_t(i)] = TokenType::Control;
  v.unk = 1;
  v.bos = 2;
  v.sep = 3;
  v.pad = 0;
  v.add_bos = v.add_sep = true;
  v.lowercase = v.strip_accents = true;
  return v;
}

TEST(WordPieceTokenizer, GreedyLongestMatchAndBertNormalizer) {
  auto tok = Tokenizer::create(small_wordpiece());
  EXPECT_EQ(tok->kind(), "WordPiece");
  EXPECT_EQ(tok->unk_id(), 1);
  EXPECT_EQ(tok->sep_id(), 3);
  EXPECT_EQ(tok->pad_id(), 0);
  EXPECT_EQ(tok->encode("unaffable", false), ids({5}));
  EXPECT_EQ(tok->encode("unaffableaff", false), ids({5, 6}));
  // A word that cannot be covered is one [UNK], whatever matched before.
  EXPECT_EQ(tok->encode("unaffablez the", false), ids({1, 8}));
  // Lower-casing, accent stripping, punctuation split, whitespace variety.
  EXPECT_EQ(tok->encode("The\tCAFÉ,\u00a0the!", false), ids({8, 11, 9, 8, 10}));
  // CJK ideographs are words of their own; control characters vanish.
  EXPECT_EQ(tok->encode("\xE4\xB8\xAD\xE6\x96\x87 t\x01he", false), ids({12, 13, 8}));
  // [CLS] ... [SEP] with special tokens.
  EXPECT_EQ(tok->encode("the", true), ids({2, 8, 3}));
  EXPECT_EQ(tok->encode("", true), ids({2, 3}));
  // Over 100 characters: [UNK] without trying.
  EXPECT_EQ(tok->encode("x" + std::string(100, 'a'), false), ids({1}));
  EXPECT_EQ(tok->encode("x" + std::string(99, 'a'), false).size(), 100u);
  EXPECT_EQ(tok->decode(tok->encode("unaffable the", false)), " unaffable the");
}

TEST(WordPieceTokenizer, BgeGgufSpecialTokensAsLlamaCppReadsThem) {
  const std::string path = std::string(VOLGA_TESTDATA_DIR) + "/vocab/ggml-vocab-bert-bge.gguf";
  if (!std::ifstream(path)) GTEST_SKIP() << "no " << path;
  auto f = GgufFile::open(path);
  auto tok = Tokenizer::from_gguf(*f);
  // The file names [CLS] only as cls_token_id; [UNK], [SEP] and [PAD] by their keys.
  EXPECT_EQ(tok->bos_id(), 101);
  EXPECT_EQ(tok->unk_id(), 100);
  EXPECT_EQ(tok->sep_id(), 102);
  EXPECT_EQ(tok->pad_id(), 0);
  EXPECT_EQ(tok->encode("Hello world", true), ids({101, 7592, 2088, 102}));
  EXPECT_EQ(tok->decode(tok->encode("Hello world", true)), " hello world");
}

TEST(WordPieceTokenizer, CasedVocabularyKeepsCaseAndAccents) {
  VocabData v = small_wordpiece();
  v.lowercase = v.strip_accents = false;
  auto tok = Tokenizer::create(v);
  EXPECT_EQ(tok->encode("The the", false), ids({1, 8}));
  EXPECT_EQ(tok->encode("café", false), ids({1}));
}

// --- GGUF round trip -------------------------------------------------------

VocabData round_trip(const VocabData& v) {
  GgufWriter w;
  w.set_string("general.architecture", "bert");
  write_vocab_gguf(w, v);
  static std::vector<uint8_t> bytes;  // the parsed file points into it
  bytes = w.to_bytes();
  auto f = GgufFile::parse(bytes.data(), bytes.size(), "roundtrip");
  return read_vocab_gguf(*f);
}

TEST(VocabGguf, UnigramAndWordPieceKeysRoundTrip) {
  VocabData u = small_unigram();
  u.precompiled_charsmap = one_rule_charsmap();
  u.hf_metaspace = true;
  VocabData r = round_trip(u);
  EXPECT_EQ(r.model, "t5");
  EXPECT_EQ(r.tokens, u.tokens);
  EXPECT_EQ(r.scores, u.scores);
  EXPECT_EQ(r.types, u.types);
  EXPECT_EQ(r.precompiled_charsmap, u.precompiled_charsmap);
  EXPECT_EQ(r.unk, 2);
  EXPECT_EQ(r.eos, 1);
  EXPECT_TRUE(r.add_eos && r.add_space_prefix && r.remove_extra_whitespaces && r.hf_metaspace);
  EXPECT_EQ(Tokenizer::create(r)->encode("Ab ", true), ids({8, 3, 1}));

  VocabData b = small_wordpiece();
  b.lowercase = false;
  b.strip_accents = true;
  VocabData rb = round_trip(b);
  EXPECT_EQ(rb.model, "bert");
  EXPECT_EQ(rb.tokens, b.tokens);
  EXPECT_EQ(rb.bos, 2);
  EXPECT_EQ(rb.sep, 3);
  EXPECT_EQ(rb.unk, 1);
  EXPECT_TRUE(rb.add_bos && rb.add_sep && !rb.lowercase && rb.strip_accents);
}

TEST(VocabGguf, UnigramWithoutScoresOrWithABadCharsmapTypeIsRefused) {
  GgufWriter w;
  w.set_string("tokenizer.ggml.model", "t5");
  w.set_string_array("tokenizer.ggml.tokens", {"<pad>", "</s>", "<unk>"});
  auto bytes = w.to_bytes();
  auto f = GgufFile::parse(bytes.data(), bytes.size(), "noscores");
  try {
    read_vocab_gguf(*f);
    ADD_FAILURE() << "accepted a unigram vocabulary without scores";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.ggml.scores"), std::string::npos) << e.what();
  }
  w.set_f32_array("tokenizer.ggml.scores", {0, 0, 0});
  w.set_string("tokenizer.ggml.precompiled_charsmap", "not bytes");
  bytes = w.to_bytes();
  f = GgufFile::parse(bytes.data(), bytes.size(), "badmap");
  try {
    read_vocab_gguf(*f);
    ADD_FAILURE() << "accepted a string charsmap";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("precompiled_charsmap"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace volga
