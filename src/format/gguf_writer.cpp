#include <cstdio>
#include <cstring>

#include "format/gguf.h"
#include "util/error.h"

namespace volga {

namespace {

template <typename T>
void put(std::vector<uint8_t>& out, T v) {
  uint8_t b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.insert(out.end(), b, b + sizeof(T));
}

void put_string(std::vector<uint8_t>& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

void put_value(std::vector<uint8_t>& out, const GgufValue& v) {
  switch (v.type) {
    case GgufType::UINT8: put<uint8_t>(out, static_cast<uint8_t>(v.u)); break;
    case GgufType::INT8: put<int8_t>(out, static_cast<int8_t>(v.i)); break;
    case GgufType::UINT16: put<uint16_t>(out, static_cast<uint16_t>(v.u)); break;
    case GgufType::INT16: put<int16_t>(out, static_cast<int16_t>(v.i)); break;
    case GgufType::UINT32: put<uint32_t>(out, static_cast<uint32_t>(v.u)); break;
    case GgufType::INT32: put<int32_t>(out, static_cast<int32_t>(v.i)); break;
    case GgufType::UINT64: put<uint64_t>(out, v.u); break;
    case GgufType::INT64: put<int64_t>(out, v.i); break;
    case GgufType::FLOAT32: put<float>(out, static_cast<float>(v.f)); break;
    case GgufType::FLOAT64: put<double>(out, v.f); break;
    case GgufType::BOOL: put<uint8_t>(out, v.u ? 1 : 0); break;
    case GgufType::STRING: put_string(out, v.s); break;
    case GgufType::ARRAY:
      put<uint32_t>(out, static_cast<uint32_t>(v.array_type));
      put<uint64_t>(out, v.array.size());
      for (const GgufValue& e : v.array) {
        if (e.type != v.array_type) throw Error("GGUF writer: array element type mismatch");
        put_value(out, e);
      }
      break;
  }
}

void pad_to(std::vector<uint8_t>& out, uint64_t alignment) {
  while (out.size() % alignment != 0) out.push_back(0);
}

}  // namespace

GgufWriter::GgufWriter(uint64_t alignment) : alignment_(alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0)
    throw Error("GGUF writer: alignment must be a power of two");
  if (alignment != 32) set_u32("general.alignment", static_cast<uint32_t>(alignment));
}

void GgufWriter::set(const std::string& key, GgufValue value) {
  for (auto& kv : kv_)
    if (kv.first == key) {
      kv.second = std::move(value);
      return;
    }
  kv_.emplace_back(key, std::move(value));
}

void GgufWriter::set_string_array(const std::string& key, const std::vector<std::string>& v) {
  std::vector<GgufValue> a;
  a.reserve(v.size());
  for (const auto& s : v) a.push_back(GgufValue::make_string(s));
  set(key, GgufValue::make_array(GgufType::STRING, std::move(a)));
}

void GgufWriter::set_i32_array(const std::string& key, const std::vector<int32_t>& v) {
  std::vector<GgufValue> a;
  a.reserve(v.size());
  for (int32_t x : v) a.push_back(GgufValue::make_i32(x));
  set(key, GgufValue::make_array(GgufType::INT32, std::move(a)));
}

void GgufWriter::set_f32_array(const std::string& key, const std::vector<float>& v) {
  std::vector<GgufValue> a;
  a.reserve(v.size());
  for (float x : v) a.push_back(GgufValue::make_f32(x));
  set(key, GgufValue::make_array(GgufType::FLOAT32, std::move(a)));
}

void GgufWriter::add_tensor(const std::string& name, DType type, const std::vector<int64_t>& dims,
                            std::vector<uint8_t> data) {
  if (dims.empty() || dims.size() > 4) throw Error("GGUF writer: tensor '" + name + "' needs 1 to 4 dims");
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  if (dims[0] % traits(type).block_size != 0)
    throw Error("GGUF writer: tensor '" + name + "' row length is not a multiple of the block size");
  if (static_cast<int64_t>(data.size()) != row_bytes(type, dims[0]) * (n / dims[0]))
    throw Error("GGUF writer: tensor '" + name + "' data size does not match its shape and type");
  for (const auto& t : tensors_)
    if (t.name == name) throw Error("GGUF writer: duplicate tensor '" + name + "'");
  tensors_.push_back({name, type, dims, std::move(data)});
}

std::vector<uint8_t> GgufWriter::to_bytes() const {
  std::vector<uint8_t> out;
  put<uint32_t>(out, 0x46554747);
  put<uint32_t>(out, 3);
  put<uint64_t>(out, tensors_.size());
  put<uint64_t>(out, kv_.size());
  for (const auto& kv : kv_) {
    put_string(out, kv.first);
    put<uint32_t>(out, static_cast<uint32_t>(kv.second.type));
    put_value(out, kv.second);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    put_string(out, t.name);
    put<uint32_t>(out, static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) put<uint64_t>(out, static_cast<uint64_t>(d));
    put<uint32_t>(out, static_cast<uint32_t>(t.type));
    put<uint64_t>(out, offset);
    offset += (t.data.size() + alignment_ - 1) / alignment_ * alignment_;
  }
  pad_to(out, alignment_);
  for (const auto& t : tensors_) {
    out.insert(out.end(), t.data.begin(), t.data.end());
    pad_to(out, alignment_);
  }
  return out;
}

void GgufWriter::write(const std::string& path) const {
  std::vector<uint8_t> bytes = to_bytes();
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error("cannot create '" + tmp + "': " + std::strerror(errno));
  size_t written = std::fwrite(bytes.data(), 1, bytes.size(), f);
  bool closed = std::fclose(f) == 0;
  bool ok = written == bytes.size() && closed;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error("cannot write '" + path + "': " + std::strerror(errno));
  }
}

}  // namespace volga
