// libFuzzer target for the document index's files: a small index (SQLite
// database + hnswlib vectors file) is made once; each input replaces one of
// the two files (first byte even: index.sqlite, odd: the vectors file) and
// the index is opened, listed and searched, read-only and read-write. A
// volga::Error is the expected outcome of a damaged file; a crash, a
// sanitizer report or another exception type is a bug.
//   index_fuzz -write_seeds=DIR   writes the two unmodified files as seeds
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "fuzz_check.h"
#include "retrieval/index.h"
#include "util/error.h"

namespace fs = std::filesystem;
using namespace volga::retrieval;

namespace {

struct Base {
  fs::path dir, work, vectors_name;
};

Base make_base() {
  Base b;
  b.dir = fs::temp_directory_path() / ("volga_index_fuzz_" + std::to_string(getpid()));
  b.work = b.dir.string() + "_work";
  fs::remove_all(b.dir);
  auto idx = DocIndex::create(b.dir.string(), 4, "fuzz (4-d)");
  for (int d = 0; d < 3; ++d) {
    std::vector<ChunkRecord> chunks;
    for (int c = 0; c < 4; ++c) {
      std::vector<float> v = {0.5f, 0.5f, 0.5f, 0.5f};
      v[static_cast<size_t>((d + c) % 4)] = -0.5f;
      chunks.push_back({"chunk " + std::to_string(c) + " текст 文本", c * 10, c * 10 + 9, v});
    }
    idx->put_document({"/docs/" + std::to_string(d) + ".txt", 100, 7, "0123456789abcdef", 0}, chunks);
  }
  idx->set_setting("model_path", "/models/m.gguf");
  idx->commit();
  idx.reset();
  for (const auto& e : fs::directory_iterator(b.dir))
    if (e.path().filename().string().rfind("vectors-", 0) == 0) b.vectors_name = e.path().filename();
  return b;
}

const Base& base() {
  static const Base b = make_base();
  return b;
}

void exercise(const std::string& dir, bool read_only) {
  try {
    auto idx = DocIndex::open(dir, read_only);
    (void)idx->documents();
    (void)idx->document("/docs/1.txt");
    (void)idx->setting("model_path");
    (void)idx->document_count();
    (void)idx->chunk_count();
    std::vector<float> q(static_cast<size_t>(idx->dim()), 0.f);
    q[0] = 1.f;
    for (const SearchHit& h : idx->search(q, 5)) FUZZ_CHECK(h.chunk >= 0 || true);
    if (!read_only) {
      idx->remove_document("/docs/0.txt");
      idx->commit();
    }
  } catch (const volga::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  for (int i = 1; i < *argc; ++i)
    if (std::strncmp((*argv)[i], "-write_seeds=", 13) == 0) {
      const fs::path out((*argv)[i] + 13);
      fs::create_directories(out);
      for (const auto& [tag, name] : {std::pair<char, fs::path>{'\0', kIndexDatabase}, {'\1', base().vectors_name}}) {
        std::ifstream in(base().dir / name, std::ios::binary);
        std::ofstream seed(out / (name.string() + ".seed"), std::ios::binary);
        seed.put(tag);
        seed << in.rdbuf();
      }
      std::exit(0);
    }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const Base& b = base();
  fs::remove_all(b.work);
  fs::copy(b.dir, b.work);
  const fs::path target = b.work / ((data[0] & 1) ? b.vectors_name : fs::path(kIndexDatabase));
  {
    std::ofstream out(target, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data + 1), static_cast<std::streamsize>(size - 1));
  }
  exercise(b.work.string(), true);
  exercise(b.work.string(), false);
  return 0;
}
