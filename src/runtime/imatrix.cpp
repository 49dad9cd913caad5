#include "runtime/imatrix.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

#include "kernels/ops.h"
#include "util/error.h"

namespace volga {

namespace {

const char* kSums = ".in_sum2";
const char* kCounts = ".counts";

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

std::vector<float> f32_tensor(const GgufFile& f, const TensorInfo& t, const std::string& path) {
  if (t.type != DType::F32) throw Error("'" + path + "': tensor " + t.name + " is not f32");
  const int64_t n = t.n_elements();  // the shape's product may overflow in a hostile file
  if (n <= 0 || static_cast<uint64_t>(n) != t.n_bytes / 4 || t.n_bytes % 4 != 0)
    throw Error("'" + path + "': tensor " + t.name + " has a shape that does not match its data");
  std::vector<float> v(static_cast<size_t>(n));
  std::memcpy(v.data(), t.data, v.size() * sizeof(float));
  for (float x : v)
    if (!std::isfinite(x)) throw Error("'" + path + "': tensor " + t.name + " holds a non-finite value");
  return v;
}

Imatrix read_gguf(const uint8_t* data, size_t size, const std::string& path) {
  auto f = GgufFile::parse(data, size, path);
  const std::string type = f->get_string_opt("general.type").value_or("");
  if (type != "imatrix")
    throw Error("'" + path + "' is a GGUF file but not an importance matrix (general.type is '" + type + "')");
  Imatrix m;
  if (const GgufValue* d = f->find("imatrix.datasets"); d && d->type == GgufType::ARRAY)
    for (const GgufValue& s : d->array) m.datasets.push_back(s.s);
  m.chunk_count = f->get_int_opt("imatrix.chunk_count").value_or(0);
  m.chunk_size = f->get_int_opt("imatrix.chunk_size").value_or(0);
  for (const TensorInfo& t : f->tensors()) {
    if (!ends_with(t.name, kSums)) continue;
    const std::string name = t.name.substr(0, t.name.size() - std::strlen(kSums));
    const TensorInfo* c = f->find_tensor(name + kCounts);
    if (!c) throw Error("'" + path + "': " + t.name + " has no " + name + kCounts);
    const std::vector<float> sums = f32_tensor(*f, t, path), counts = f32_tensor(*f, *c, path);
    const int64_t cols = t.ne[0], n_mat = static_cast<int64_t>(sums.size()) / std::max<int64_t>(1, cols);
    if (cols <= 0 || static_cast<int64_t>(counts.size()) != n_mat)
      throw Error("'" + path + "': " + name + " has " + std::to_string(n_mat) + " matrices of sums but " +
                  std::to_string(counts.size()) + " counts");
    ImatrixEntry& e = m.entries[name];
    e.cols = cols;
    e.sums.assign(sums.begin(), sums.end());
    e.counts.assign(counts.begin(), counts.end());
  }
  if (m.entries.empty()) throw Error("'" + path + "' holds no importance data (no *.in_sum2 tensors)");
  return m;
}

// The legacy format: int32 entry count; per entry int32 name length, name,
// int32 calls, int32 values, float values (sums); then, optionally, int32
// chunk count, int32 dataset name length, dataset name.
Imatrix read_dat(const uint8_t* data, size_t size, const std::string& path) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  size_t pos = 0;
  auto i32 = [&](const char* what) {
    if (pos + 4 > bytes.size()) throw Error("'" + path + "' is truncated (reading " + what + ")");
    int32_t v;
    std::memcpy(&v, bytes.data() + pos, 4);
    pos += 4;
    return v;
  };
  Imatrix m;
  const int32_t n = i32("the entry count");
  if (n <= 0 || n > (1 << 24)) throw Error("'" + path + "' is not an importance matrix (entry count " + std::to_string(n) + ")");
  for (int32_t i = 0; i < n; ++i) {
    const int32_t len = i32("a name length");
    if (len <= 0 || static_cast<size_t>(len) > bytes.size() - pos)
      throw Error("'" + path + "': entry " + std::to_string(i) + " has a bad name length");
    const std::string name = bytes.substr(pos, static_cast<size_t>(len));
    pos += static_cast<size_t>(len);
    const int32_t calls = i32("a call count"), nval = i32("a value count");
    if (nval <= 0 || static_cast<size_t>(nval) > (bytes.size() - pos) / 4)
      throw Error("'" + path + "': " + name + " has a bad value count or the file is truncated");
    ImatrixEntry& e = m.entries[name];
    e.cols = nval;
    e.sums.resize(static_cast<size_t>(nval));
    for (int32_t k = 0; k < nval; ++k) {
      float v;
      std::memcpy(&v, bytes.data() + pos + 4 * static_cast<size_t>(k), 4);
      if (!std::isfinite(v)) throw Error("'" + path + "': " + name + " holds a non-finite value");
      e.sums[static_cast<size_t>(k)] = v;
    }
    pos += 4 * static_cast<size_t>(nval);
    e.counts = {static_cast<double>(calls)};
  }
  if (pos + 4 <= bytes.size()) {
    m.chunk_count = i32("the chunk count");
    if (pos + 4 <= bytes.size()) {
      const int32_t len = i32("the dataset name length");
      if (len > 0 && static_cast<size_t>(len) <= bytes.size() - pos) m.datasets.push_back(bytes.substr(pos, static_cast<size_t>(len)));
    }
  }
  return m;
}

}  // namespace

std::vector<float> Imatrix::weights(const std::string& name, int64_t mat, int64_t cols) const {
  auto it = entries.find(name);
  if (it == entries.end()) return {};
  const ImatrixEntry& e = it->second;
  // A legacy entry of an expert tensor holds every expert's columns in one row.
  const int64_t width = e.n_mat() == 1 && e.cols != cols && e.cols % cols == 0 ? cols : e.cols;
  if (width != cols)
    throw Error("the importance matrix has " + std::to_string(e.cols) + " columns for " + name + ", the model " +
                std::to_string(cols) + ": it was made for another model");
  const int64_t n_mat = static_cast<int64_t>(e.sums.size()) / width;
  if (mat >= n_mat) throw Error("the importance matrix has no matrix " + std::to_string(mat) + " for " + name);
  const double count = e.counts[static_cast<size_t>(std::min<int64_t>(mat, e.n_mat() - 1))];
  std::vector<float> w(static_cast<size_t>(cols));
  for (int64_t k = 0; k < cols; ++k)
    w[static_cast<size_t>(k)] =
        static_cast<float>(count > 0 ? e.sums[static_cast<size_t>(mat * width + k)] / count : 1.0);
  return w;
}

Imatrix parse_imatrix(const uint8_t* data, size_t size, const std::string& name) {
  if (size >= 4 && std::memcmp(data, "GGUF", 4) == 0) return read_gguf(data, size, name);
  return read_dat(data, size, name);
}

Imatrix read_imatrix(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open '" + path + "': " + std::strerror(errno));
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_imatrix(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path);
}

void write_imatrix_gguf(const Imatrix& m, const std::string& path) {
  GgufWriter w;
  w.set_string("general.type", "imatrix");
  w.set_string_array("imatrix.datasets", m.datasets);
  w.set_u32("imatrix.chunk_count", static_cast<uint32_t>(m.chunk_count));
  w.set_u32("imatrix.chunk_size", static_cast<uint32_t>(m.chunk_size));
  for (const auto& [name, e] : m.entries) {
    std::vector<uint8_t> sums(e.sums.size() * 4), counts(e.counts.size() * 4);
    for (size_t i = 0; i < e.sums.size(); ++i) {
      const float v = static_cast<float>(e.sums[i]);
      std::memcpy(sums.data() + 4 * i, &v, 4);
    }
    for (size_t i = 0; i < e.counts.size(); ++i) {
      const float v = static_cast<float>(e.counts[i]);
      std::memcpy(counts.data() + 4 * i, &v, 4);
    }
    w.add_tensor(name + kSums, DType::F32, {e.cols, e.n_mat()}, std::move(sums));
    w.add_tensor(name + kCounts, DType::F32, {1, e.n_mat()}, std::move(counts));
  }
  w.write(path);
}

void write_imatrix_dat(const Imatrix& m, const std::string& path) {
  std::string out;
  auto i32 = [&](int32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); };
  i32(static_cast<int32_t>(m.entries.size()));
  for (const auto& [name, e] : m.entries) {
    i32(static_cast<int32_t>(name.size()));
    out += name;
    // One call count for all matrices: the legacy format scales each expert's
    // sums to it, so that sums / calls is still that expert's mean.
    double calls = 0;
    for (double c : e.counts) calls = std::max(calls, c);
    i32(static_cast<int32_t>(calls));
    i32(static_cast<int32_t>(e.sums.size()));
    for (int64_t k = 0; k < static_cast<int64_t>(e.sums.size()); ++k) {
      const double c = e.counts[static_cast<size_t>(k / e.cols)];
      const float v = static_cast<float>(c > 0 ? e.sums[static_cast<size_t>(k)] / c * calls : 0.0);
      out.append(reinterpret_cast<const char*>(&v), 4);
    }
  }
  i32(static_cast<int32_t>(m.chunk_count));
  const std::string dataset = m.datasets.empty() ? std::string() : m.datasets[0];
  i32(static_cast<int32_t>(dataset.size()));
  out += dataset;
  std::ofstream f(path, std::ios::binary);
  f.write(out.data(), static_cast<std::streamsize>(out.size()));
  f.close();
  if (!f) throw Error("cannot write '" + path + "'");
}

ImatrixCollector::ImatrixCollector(const GgufFile& file) {
  for (const TensorInfo& t : file.tensors()) {
    if (t.n_dims < 2 || t.name == "output.weight") continue;
    const int64_t n_mat = t.n_dims >= 3 ? t.ne[2] : 1;
    spans_.push_back({t.data, t.data + t.n_bytes, t.name, t.ne[0],
                      static_cast<int64_t>(t.n_bytes) / std::max<int64_t>(1, n_mat), n_mat});
  }
  std::sort(spans_.begin(), spans_.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
  kernels::set_matmul_observer(&ImatrixCollector::observe, this);
}

ImatrixCollector::~ImatrixCollector() { kernels::set_matmul_observer(nullptr, nullptr); }

void ImatrixCollector::observe(const WeightMatrix& w, const float* x, int64_t n_tokens, void* self_ptr) {
  auto* self = static_cast<ImatrixCollector*>(self_ptr);
  auto it = std::upper_bound(self->spans_.begin(), self->spans_.end(), w.data,
                             [](const uint8_t* p, const Span& s) { return p < s.begin; });
  if (it == self->spans_.begin() || w.data >= std::prev(it)->end) {
    ++self->unmatched_;
    return;
  }
  const Span& s = *std::prev(it);
  if (s.cols != w.cols) {
    ++self->unmatched_;
    return;
  }
  const int64_t mat = (w.data - s.begin) / std::max<int64_t>(1, s.mat_bytes);
  ImatrixEntry& e = self->m_.entries[s.name];
  if (e.counts.empty()) {
    e.cols = s.cols;
    e.sums.assign(static_cast<size_t>(s.cols * s.n_mat), 0.0);
    e.counts.assign(static_cast<size_t>(s.n_mat), 0.0);
  }
  double* sums = e.sums.data() + mat * s.cols;
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* row = x + t * w.cols;
    for (int64_t k = 0; k < w.cols; ++k) sums[k] += static_cast<double>(row[k]) * row[k];
  }
  e.counts[static_cast<size_t>(mat)] += static_cast<double>(n_tokens);
}

}  // namespace volga
