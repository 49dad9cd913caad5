// Basic tokenizer behaviour on the synthetic byte-level vocabulary. The
// id-exact comparison against real vocabularies is the tokenizer issue's suite.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>

#include "format/gguf.h"
#include "synth_model.h"
#include "tokenizer/tokenizer.h"
#include "util/utf8.h"

namespace volga {
namespace {

class ByteBpe : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    path_ = ::testing::TempDir() + "volga_tok_" + std::to_string(::getpid()) + ".gguf";
    synth::SynthOptions o;
    o.output = path_;
    o.quiet = true;
    o.n_layer = 1;
    synth::write_synthetic_model(o);
    file_ = GgufFile::open(path_).release();
    tok_ = Tokenizer::from_gguf(*file_).release();
  }
  static void TearDownTestSuite() {
    delete tok_;
    delete file_;
    std::remove(path_.c_str());
  }
  static std::string path_;
  static GgufFile* file_;
  static Tokenizer* tok_;
};
std::string ByteBpe::path_;
GgufFile* ByteBpe::file_ = nullptr;
Tokenizer* ByteBpe::tok_ = nullptr;

TEST_F(ByteBpe, RoundTripsMultilingualText) {
  for (std::string text : {"Hello world", "Съешь же ещё этих мягких булок", "今天天气很好 🙂",
                           "Il fait beau aujourd'hui.\n\n  tabs\tand  spaces ", "\xF0\x9F\x98\x80\x00x"}) {
    auto ids = tok_->encode(text, false);
    EXPECT_EQ(tok_->decode(ids), text);
  }
}

TEST_F(ByteBpe, MergesShortenCommonText) {
  // The built-in vocabulary is trained on this kind of text: merges must apply.
  std::string text = "the weather is good today";
  EXPECT_LT(tok_->encode(text, false).size(), text.size() * 3 / 4);
}

TEST_F(ByteBpe, SpecialTokensOnlyWhenAllowed) {
  std::string text = "<|im_start|>user";
  auto parsed = tok_->encode(text, false, true);
  ASSERT_FALSE(parsed.empty());
  EXPECT_EQ(tok_->piece(parsed[0]), "<|im_start|>");
  EXPECT_EQ(tok_->type(parsed[0]), TokenType::Control);
  auto plain = tok_->encode(text, false, false);
  for (int32_t id : plain) EXPECT_NE(tok_->type(id), TokenType::Control);
  EXPECT_EQ(tok_->decode(plain), text);
}

TEST_F(ByteBpe, StreamDecoderNeverEmitsBrokenUtf8) {
  std::string text = "ёж 中文 🙂 é";
  std::vector<int32_t> ids;
  for (unsigned char c : text) ids.push_back(tok_->encode(std::string(1, static_cast<char>(c)), false).at(0));
  StreamDecoder dec(*tok_);
  std::string out;
  for (int32_t id : ids) {
    std::string piece = dec.push(id);
    // Every emitted piece is complete UTF-8 on its own.
    size_t i = 0;
    while (i < piece.size()) {
      unsigned char c = static_cast<unsigned char>(piece[i]);
      size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
      ASSERT_LE(i + len, piece.size()) << "split character emitted";
      i += len;
    }
    out += piece;
  }
  out += dec.flush();
  EXPECT_EQ(out, text);
}

}  // namespace
}  // namespace volga

namespace volga {
namespace {
TEST(Utf8, SanitizeReplacesOnlyInvalidBytes) {
  EXPECT_EQ(sanitize_utf8("ok ё 中 🙂"), "ok ё 中 🙂");
  EXPECT_EQ(sanitize_utf8("a\xC1z"), "a\xEF\xBF\xBDz");             // never-valid lead byte
  EXPECT_EQ(sanitize_utf8("\xE0\x80\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong
  EXPECT_EQ(sanitize_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(sanitize_utf8("\xF0\x9F\x99"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // cut short
  EXPECT_TRUE(utf8_incomplete_prefix("\xF0\x9F\x99", 0));
  EXPECT_FALSE(utf8_incomplete_prefix("\xF0\x41", 0));
}
}  // namespace
}  // namespace volga
