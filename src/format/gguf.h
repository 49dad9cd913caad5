// GGUF v2/v3 reader (memory-mapped, zero-copy tensor data) and writer.
//
// The reader validates every count, string length, offset and tensor size
// against the file length before using it; a truncated, corrupted or hostile
// file produces a volga::Error naming the problem and the byte offset.
// Ownership: GgufFile owns the mapping (when opened from a path); TensorInfo
// data pointers stay valid for the GgufFile's lifetime.
// Thread-safety: immutable after construction.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tensor/dtype.h"
#include "util/mapped_file.h"

namespace volga {

enum class GgufType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
  BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
const char* gguf_type_name(GgufType t);

// One metadata value. Scalars are widened to u64 / i64 / f64 but keep their
// declared type (needed to write the file back and to print it faithfully).
struct GgufValue {
  GgufType type = GgufType::UINT32;
  uint64_t u = 0;  // UINT8..UINT64, BOOL
  int64_t i = 0;   // INT8..INT64
  double f = 0;    // FLOAT32, FLOAT64
  std::string s;   // STRING
  GgufType array_type = GgufType::UINT8;  // ARRAY element type
  std::vector<GgufValue> array;

  static GgufValue make_u32(uint32_t v) { GgufValue x; x.type = GgufType::UINT32; x.u = v; return x; }
  static GgufValue make_u64(uint64_t v) { GgufValue x; x.type = GgufType::UINT64; x.u = v; return x; }
  static GgufValue make_i32(int32_t v) { GgufValue x; x.type = GgufType::INT32; x.i = v; return x; }
  static GgufValue make_f32(float v) { GgufValue x; x.type = GgufType::FLOAT32; x.f = v; return x; }
  static GgufValue make_bool(bool v) { GgufValue x; x.type = GgufType::BOOL; x.u = v; return x; }
  static GgufValue make_string(std::string v) { GgufValue x; x.type = GgufType::STRING; x.s = std::move(v); return x; }
  static GgufValue make_array(GgufType elem, std::vector<GgufValue> v) {
    GgufValue x; x.type = GgufType::ARRAY; x.array_type = elem; x.array = std::move(v); return x;
  }

  bool is_integer() const;
  bool is_number() const { return is_integer() || type == GgufType::FLOAT32 || type == GgufType::FLOAT64; }
  // Short human-readable rendering (arrays summarised).
  std::string to_display_string(size_t max_len = 80) const;
};

struct TensorInfo {
  std::string name;
  DType type = DType::F32;
  int n_dims = 0;
  int64_t ne[4] = {1, 1, 1, 1};  // ne[0] is the contiguous (row) dimension
  uint64_t offset = 0;           // relative to the start of the data section
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;  // points into the mapped file

  int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  std::string shape_string() const;
};

class GgufFile {
 public:
  // Maps and parses a file. Throws volga::Error (message starts with the path).
  static std::unique_ptr<GgufFile> open(const std::string& path);
  // Parses a buffer the caller keeps alive (fuzzing, tests).
  static std::unique_ptr<GgufFile> parse(const uint8_t* data, size_t size,
                                         const std::string& name = "<memory>");

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  size_t file_size() const { return size_; }
  const std::string& path() const { return name_; }

  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(const std::string& key) const;
  bool has(const std::string& key) const { return find(key) != nullptr; }

  // Typed accessors: throw volga::Error when the key is missing (no default) or
  // holds an incompatible type. Integer types convert if the value fits.
  std::string get_string(const std::string& key) const;
  std::optional<std::string> get_string_opt(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  std::optional<int64_t> get_int_opt(const std::string& key) const;
  double get_float(const std::string& key) const;
  std::optional<double> get_float_opt(const std::string& key) const;
  std::optional<bool> get_bool_opt(const std::string& key) const;
  const std::vector<GgufValue>& get_array(const std::string& key, GgufType elem) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(const std::string& name) const;

 private:
  GgufFile() = default;
  void parse_all();

  std::unique_ptr<MappedFile> mapping_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string name_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t> kv_index_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

// Builds a GGUF v3 file in memory and writes it. Tensor data is copied in.
class GgufWriter {
 public:
  explicit GgufWriter(uint64_t alignment = 32);
  void set(const std::string& key, GgufValue value);  // replaces an existing key
  void set_u32(const std::string& key, uint32_t v) { set(key, GgufValue::make_u32(v)); }
  void set_f32(const std::string& key, float v) { set(key, GgufValue::make_f32(v)); }
  void set_bool(const std::string& key, bool v) { set(key, GgufValue::make_bool(v)); }
  void set_string(const std::string& key, const std::string& v) { set(key, GgufValue::make_string(v)); }
  void set_string_array(const std::string& key, const std::vector<std::string>& v);
  void set_i32_array(const std::string& key, const std::vector<int32_t>& v);
  void set_f32_array(const std::string& key, const std::vector<float>& v);

  // dims[0] is the row length. data must hold exactly the tensor's bytes.
  void add_tensor(const std::string& name, DType type, const std::vector<int64_t>& dims,
                  std::vector<uint8_t> data);

  std::vector<uint8_t> to_bytes() const;
  void write(const std::string& path) const;  // throws volga::Error on I/O failure

 private:
  struct PendingTensor {
    std::string name;
    DType type;
    std::vector<int64_t> dims;
    std::vector<uint8_t> data;
  };
  uint64_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace volga
