// The document index's parts: text extraction (HTML entities and markup as
// the HTML spec defines them), the chunker's invariants under a word-count
// tokenizer, the SQLite + hnswlib store against a brute-force search, crash
// safety (no commit = no change), corruption refused, and add_files with a
// bag-of-words embedder.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "retrieval/chunker.h"
#include "retrieval/extract.h"
#include "retrieval/index.h"
#include "retrieval/indexer.h"
#include "util/error.h"
#include "util/utf8.h"

namespace volga::retrieval {
namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& tag) {
  fs::path d = fs::path(::testing::TempDir()) / ("volga_index_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

std::map<std::string, std::string> snapshot(const fs::path& d) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(d)) out[e.path().filename().string()] = read_file_bytes(e.path().string());
  return out;
}

// Tokens: whitespace-separated words, each code point from U+2E80 up (CJK)
// alone, plus 2 special tokens (as [CLS] ... [SEP]).
int64_t word_count(const std::string& s) {
  int64_t n = 2;
  bool in_word = false;
  for (uint32_t cp : utf8_code_points(s)) {
    if (cp >= 0x2E80) {
      ++n;
      in_word = false;
    } else if (cp == ' ' || cp == '\n' || cp == '\t') {
      in_word = false;
    } else if (!in_word) {
      ++n;
      in_word = true;
    }
  }
  return n;
}

TEST(RetrievalExtract, HtmlScriptsStylesCommentsAndEntities) {
  const std::string html =
      "<html><head><title>T&eacute;st</title><script>if (a < b) x = '<p>';</script><STYLE>p{}</STYLE></head>"
      "<body><p>One &amp; two &lt;three&gt; &#1046;&#x4E2D; &quot;q&quot;</p><!-- hidden --><div>a<br>b</div>"
      "<p>&bogus; &#xZZ; 5 < 6</p></body></html>";
  // &eacute; is outside the decoded set and stays as written.
  EXPECT_EQ(html_to_text(html), "T&eacute;st\n\nOne & two <three> \u0416\u4E2D \"q\"\n\na\nb\n\n&bogus; &#xZZ; 5 < 6");
}

TEST(RetrievalExtract, MarkdownLinksHeadingsEmphasis) {
  EXPECT_EQ(markdown_to_text("# Title\n\nSee **bold** and [a link](http://x.invalid/) and snake_case_name.\n"),
            "Title\n\nSee bold and a link and snake_case_name.");
}

TEST(RetrievalExtract, KindsAndUtf8Check) {
  EXPECT_EQ(kind_of_path("/a/b.HTML"), DocKind::Html);
  EXPECT_EQ(kind_of_path("/a.d/b"), DocKind::Unknown);
  EXPECT_EQ(kind_of_path("x.pdf"), DocKind::Pdf);
  const fs::path d = fresh_dir("utf8");
  fs::create_directories(d);
  write_file(d / "bad.txt", "ok \xff\xfe bytes");
  EXPECT_THROW(extract_text((d / "bad.txt").string(), DocKind::Text), Error);
  write_file(d / "bom.txt", "\xEF\xBB\xBFhello   world");
  EXPECT_EQ(extract_text((d / "bom.txt").string(), DocKind::Text), "hello world");
  fs::remove_all(d);
}

TEST(RetrievalExtract, Fnv1a64PublishedVectors) {
  EXPECT_EQ(content_hash(""), "cbf29ce484222325");
  EXPECT_EQ(content_hash("a"), "af63dc4c8601ec8c");
  EXPECT_EQ(content_hash("foobar"), "85944171f73967e8");
}

void check_chunks(const std::string& text, const ChunkOptions& opts) {
  const auto chunks = chunk_text(text, opts, word_count);
  ASSERT_FALSE(chunks.empty());
  int64_t covered = 0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const Chunk& c = chunks[i];
    EXPECT_EQ(c.text, text.substr(c.start, c.end - c.start));
    EXPECT_LE(word_count(c.text), opts.max_tokens) << c.text;
    EXPECT_EQ(sanitize_utf8(c.text), c.text);  // whole UTF-8 sequences
    if (c.start > covered)  // only whitespace between chunks
      EXPECT_EQ(text.substr(covered, c.start - covered).find_first_not_of(" \n"), std::string::npos) << i;
    if (i > 0) {
      EXPECT_GT(c.start, chunks[i - 1].start);
      if (c.start < chunks[i - 1].end)  // the overlap is within its budget
        EXPECT_LE(word_count(text.substr(c.start, chunks[i - 1].end - c.start)) - 2, opts.overlap_tokens);
    }
    covered = std::max(covered, c.end);
  }
  const std::string tail = text.substr(covered);
  EXPECT_EQ(tail.find_first_not_of(" \n"), std::string::npos);
}

TEST(RetrievalChunker, InvariantsOnMixedScripts) {
  std::mt19937 rng(7);
  const char* words[] = {"Волга", "река", "长江", "黄河。", "vin", "rouge.", "the", "river\n\n", "上海", "quick"};
  for (int trial = 0; trial < 20; ++trial) {
    std::string text;
    const int n = 50 + static_cast<int>(rng() % 400);
    for (int i = 0; i < n; ++i) text += std::string(words[rng() % 10]) + (rng() % 3 ? " " : "");
    ChunkOptions opts;
    opts.max_tokens = 8 + static_cast<int64_t>(rng() % 40);
    opts.overlap_tokens = static_cast<int64_t>(rng() % 6);
    check_chunks(text, opts);
  }
  // A word longer than a chunk is cut between characters.
  check_chunks(std::string(200, 'x') + " " + "中文字符串" + std::string(30, 'y'), {4, 1});
}

TEST(RetrievalChunker, PrefersParagraphThenSentenceEnds) {
  const std::string p1 = "one two three four five six seven eight.", p2 = "nine ten eleven twelve.";
  const auto chunks = chunk_text(p1 + "\n\n" + p2 + " thirteen fourteen fifteen.", {2 + 12, 0}, word_count);
  ASSERT_GE(chunks.size(), 2u);
  EXPECT_EQ(chunks[0].text, p1);  // not "... eight. nine ten eleven"
  const auto sentences = chunk_text("a b c. d e f g. h i j k l m n o p", {2 + 9, 0}, word_count);
  EXPECT_EQ(sentences[0].text, "a b c. d e f g.");
}

TEST(RetrievalChunker, RefusesImpossibleSizes) {
  EXPECT_THROW(chunk_text("x", {2, 0}, word_count), Error);   // the special tokens alone fill it
  EXPECT_THROW(chunk_text("x", {10, 10}, word_count), Error);  // overlap not below the size
  EXPECT_TRUE(chunk_text("   \n ", {10, 2}, word_count).empty());
}

std::vector<float> unit_vector(std::mt19937& rng, int dim) {
  std::normal_distribution<float> n;
  std::vector<float> v(dim);
  double s = 0;
  for (float& x : v) s += (x = n(rng)) * static_cast<double>(x);
  for (float& x : v) x = static_cast<float>(x / std::sqrt(s));
  return v;
}

std::vector<ChunkRecord> records(std::mt19937& rng, const std::string& tag, int n, int dim) {
  std::vector<ChunkRecord> out;
  for (int i = 0; i < n; ++i) out.push_back({tag + "#" + std::to_string(i), 0, 1, unit_vector(rng, dim)});
  return out;
}

TEST(RetrievalStore, SearchMatchesBruteForceAndSurvivesReopen) {
  const fs::path d = fresh_dir("store");
  const int dim = 16;
  std::mt19937 rng(3);
  std::vector<std::pair<std::string, std::vector<float>>> all;
  {
    auto idx = DocIndex::create(d.string(), dim, "m (16-d)");
    EXPECT_THROW(DocIndex::create(d.string(), dim, "m"), Error);
    for (int doc = 0; doc < 20; ++doc) {
      auto recs = records(rng, "/d" + std::to_string(doc), 10, dim);
      for (auto& r : recs) all.push_back({r.text, r.vector});
      idx->put_document({"/d" + std::to_string(doc), 1, 2, "h", 0}, recs);
    }
    idx->set_setting("model_path", "/m.gguf");
    idx->commit();
  }
  auto idx = DocIndex::open(d.string(), true);
  EXPECT_EQ(idx->dim(), dim);
  EXPECT_EQ(idx->model_id(), "m (16-d)");
  EXPECT_EQ(idx->document_count(), 20);
  EXPECT_EQ(idx->chunk_count(), 200);
  EXPECT_EQ(idx->setting("model_path"), "/m.gguf");
  EXPECT_EQ(idx->document("/d3")->chunks, 10);
  for (int q = 0; q < 20; ++q) {
    const auto query = unit_vector(rng, dim);
    double best = -2;
    std::string best_text;
    for (const auto& [text, v] : all) {
      double dot = 0;
      for (int i = 0; i < dim; ++i) dot += static_cast<double>(v[i]) * query[i];
      if (dot > best) best = dot, best_text = text;
    }
    const auto hits = idx->search(query, 3);
    ASSERT_EQ(hits.size(), 3u);
    EXPECT_EQ(hits[0].text, best_text);  // 200 points, ef 64: exact in practice
    EXPECT_NEAR(hits[0].score, best, 1e-5);
    EXPECT_EQ(hits[0].source + "#" + std::to_string(hits[0].chunk), best_text);
    EXPECT_GE(hits[0].score, hits[1].score);
  }
  EXPECT_THROW(idx->search(std::vector<float>(dim + 1), 1), Error);
  EXPECT_THROW(idx->remove_document("/d1"), Error);  // read-only
  idx.reset();
  fs::remove_all(d);
}

TEST(RetrievalStore, UncommittedWritesLeaveTheIndexAsItWas) {
  const fs::path d = fresh_dir("crash");
  std::mt19937 rng(5);
  {
    auto idx = DocIndex::create(d.string(), 8, "m");
    idx->put_document({"/a", 1, 1, "h", 0}, records(rng, "a", 3, 8));
    idx->commit();
  }
  const auto before = snapshot(d);
  {
    auto idx = DocIndex::open(d.string(), false);
    EXPECT_THROW(DocIndex::open(d.string(), false), Error);  // one writer at a time
    idx->put_document({"/b", 1, 1, "h", 0}, records(rng, "b", 3, 8));
    EXPECT_TRUE(idx->remove_document("/a"));
    EXPECT_FALSE(idx->remove_document("/zzz"));
    // destroyed without commit(), as a crash would
  }
  EXPECT_EQ(snapshot(d), before);
  auto idx = DocIndex::open(d.string(), false);
  EXPECT_EQ(idx->document_count(), 1);
  idx->put_document({"/a", 2, 2, "h2", 0}, records(rng, "a2", 2, 8));  // replace
  write_file(d / "vectors-99.hnsw.tmp", "stray");
  idx->commit();
  idx.reset();
  idx = DocIndex::open(d.string(), false);  // a writer's open removes what a crash left
  EXPECT_FALSE(fs::exists(d / "vectors-99.hnsw.tmp"));
  EXPECT_EQ(idx->chunk_count(), 2);
  const auto hits = idx->search(std::vector<float>(8, 0.35f), 10);
  EXPECT_EQ(hits.size(), 2u);
  for (const auto& h : hits) EXPECT_EQ(h.text.substr(0, 3), "a2#");
  int vector_files = 0;
  for (const auto& e : fs::directory_iterator(d)) vector_files += e.path().filename().string().rfind("vectors-", 0) == 0;
  EXPECT_EQ(vector_files, 1);  // the previous generation is deleted
  idx.reset();
  fs::remove_all(d);
}

TEST(RetrievalStore, CorruptFilesAreRefusedAndLeftAlone) {
  const fs::path d = fresh_dir("corrupt");
  std::mt19937 rng(9);
  {
    auto idx = DocIndex::create(d.string(), 8, "m");
    idx->put_document({"/a", 1, 1, "h", 0}, records(rng, "a", 50, 8));
    idx->commit();
  }
  fs::path vectors;
  for (const auto& e : fs::directory_iterator(d))
    if (e.path().filename().string().rfind("vectors-", 0) == 0) vectors = e.path();
  std::string bytes = read_file_bytes(vectors.string());
  bytes[bytes.size() / 2] ^= 1;
  write_file(vectors, bytes);
  const auto before = snapshot(d);
  for (bool ro : {true, false}) {
    try {
      DocIndex::open(d.string(), ro);
      ADD_FAILURE() << "a corrupt vectors file was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("corrupt"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(snapshot(d), before);
  write_file(d / kIndexDatabase, std::string(4096, 'x'));
  EXPECT_THROW(DocIndex::open(d.string(), true), Error);
  EXPECT_THROW(DocIndex::open((d / "missing").string(), true), Error);
  fs::remove_all(d);
}

// Bag of words: each word (and each CJK character) adds a fixed pseudo-random direction.
class WordEmbedder : public Embedder {
 public:
  std::vector<std::vector<float>> embed(const std::vector<std::string>& texts) override {
    std::vector<std::vector<float>> out;
    for (const std::string& t : texts) {
      std::vector<float> v(32, 0.f);
      std::istringstream in(t);
      std::string w;
      while (in >> w) {
        std::mt19937 rng(static_cast<unsigned>(std::hash<std::string>{}(w)));
        const auto u = unit_vector(rng, 32);
        for (int i = 0; i < 32; ++i) v[i] += u[i];
      }
      double s = 0;
      for (float x : v) s += static_cast<double>(x) * x;
      for (float& x : v) x = s > 0 ? static_cast<float>(x / std::sqrt(s)) : 0.f;
      out.push_back(v);
    }
    return out;
  }
  int64_t dim() const override { return 32; }
  std::string model_id() const override { return "words (32-d)"; }
  int64_t max_tokens() const override { return 64; }
  int64_t count_tokens(const std::string& text) const override { return word_count(text); }
};

TEST(RetrievalIndexer, AddSkipsUnchangedReplacesChangedSkipsBinary) {
  const fs::path d = fresh_dir("indexer"), docs = d / "docs", index = d / "idx";
  fs::create_directories(docs / ".hidden");
  write_file(docs / "a.txt", "apples pears plums orchard");
  write_file(docs / "b.md", "# Boats\n\nsails wind harbour");
  write_file(docs / "c.txt", std::string("binary \0 data", 13));
  write_file(docs / "d.bin", "not collected from a directory");
  write_file(docs / ".hidden" / "e.txt", "hidden");
  const auto files = collect_files({docs.string()});
  ASSERT_EQ(files.size(), 3u);
  WordEmbedder emb;
  std::vector<FileEvent> events;
  auto on_file = [&](const FileEvent& e) { events.push_back(e); };
  {
    auto idx = DocIndex::create(index.string(), emb.dim(), emb.model_id());
    const AddSummary s = add_files(*idx, emb, files, {}, nullptr, on_file);
    EXPECT_EQ(s.added, 2);
    EXPECT_EQ(s.skipped, 1);
    EXPECT_EQ(events[2].kind, FileEvent::Skipped);
    EXPECT_NE(events[2].reason.find("not UTF-8"), std::string::npos);
    EXPECT_EQ(search_text(*idx, emb, "wind sails", 1)[0].source, absolute_source((docs / "b.md").string()));
  }
  write_file(docs / "a.txt", "trains rails stations");
  auto idx = DocIndex::open(index.string(), false);
  events.clear();
  const AddSummary s = add_files(*idx, emb, collect_files({docs.string()}), {}, nullptr, on_file);
  EXPECT_EQ(s.updated, 1);
  EXPECT_EQ(s.unchanged, 1);
  EXPECT_EQ(search_text(*idx, emb, "rails trains", 1)[0].text, "trains rails stations");
  EXPECT_EQ(remove_paths(*idx, {docs.string()}).size(), 2u);
  EXPECT_EQ(idx->chunk_count(), 0);
  struct Other : WordEmbedder {
    std::string model_id() const override { return "other (32-d)"; }
  } other;
  EXPECT_THROW(search_text(*idx, other, "x", 1), Error);
  idx.reset();
  fs::remove_all(d);
}

}  // namespace
}  // namespace volga::retrieval
