#include <cstring>
#include <limits>
#include <sstream>

#include "format/gguf.h"
#include "util/error.h"

namespace volga {

namespace {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" little-endian
constexpr int kMaxArrayDepth = 8;
constexpr int kMaxDims = 4;

// Bounds-checked little-endian reader over the file bytes.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& name)
      : data_(data), size_(size), name_(name) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  [[noreturn]] void fail(const std::string& what) const {
    throw Error("GGUF '" + name_ + "': " + what + " (at byte offset " + std::to_string(pos_) +
                ", file is " + std::to_string(size_) + " bytes)");
  }

  void need(uint64_t n, const char* what) const {
    if (n > remaining())
      fail(std::string("file is truncated while reading ") + what + ": needs " +
           std::to_string(n) + " bytes, " + std::to_string(remaining()) + " left");
  }

  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(const char* what) {
    uint64_t len = read<uint64_t>(what);
    if (len > remaining())
      fail(std::string("string length ") + std::to_string(len) + " of " + what +
           " exceeds the remaining " + std::to_string(remaining()) + " bytes");
    std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return s;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& name_;
};

// Smallest encoded size of one value of type t (used to reject absurd counts
// before allocating). 0 for an unknown type.
uint64_t min_encoded_size(uint32_t t) {
  switch (static_cast<GgufType>(t)) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::BOOL: return 1;
    case GgufType::UINT16: case GgufType::INT16: return 2;
    case GgufType::UINT32: case GgufType::INT32: case GgufType::FLOAT32: return 4;
    case GgufType::UINT64: case GgufType::INT64: case GgufType::FLOAT64: return 8;
    case GgufType::STRING: return 8;
    case GgufType::ARRAY: return 12;
  }
  return 0;
}

GgufValue read_value(Cursor& c, uint32_t type, const std::string& key, int depth) {
  GgufValue v;
  if (min_encoded_size(type) == 0)
    c.fail("metadata key '" + key + "' has unknown value type " + std::to_string(type));
  v.type = static_cast<GgufType>(type);
  switch (v.type) {
    case GgufType::UINT8: v.u = c.read<uint8_t>("a u8 value"); break;
    case GgufType::INT8: v.i = c.read<int8_t>("an i8 value"); break;
    case GgufType::UINT16: v.u = c.read<uint16_t>("a u16 value"); break;
    case GgufType::INT16: v.i = c.read<int16_t>("an i16 value"); break;
    case GgufType::UINT32: v.u = c.read<uint32_t>("a u32 value"); break;
    case GgufType::INT32: v.i = c.read<int32_t>("an i32 value"); break;
    case GgufType::UINT64: v.u = c.read<uint64_t>("a u64 value"); break;
    case GgufType::INT64: v.i = c.read<int64_t>("an i64 value"); break;
    case GgufType::FLOAT32: v.f = c.read<float>("an f32 value"); break;
    case GgufType::FLOAT64: v.f = c.read<double>("an f64 value"); break;
    case GgufType::BOOL: {
      uint8_t b = c.read<uint8_t>("a bool value");
      if (b > 1) c.fail("metadata key '" + key + "' has invalid bool byte " + std::to_string(b));
      v.u = b;
      break;
    }
    case GgufType::STRING: v.s = c.read_string("a string value"); break;
    case GgufType::ARRAY: {
      if (depth >= kMaxArrayDepth) c.fail("metadata key '" + key + "' nests arrays too deeply");
      uint32_t elem = c.read<uint32_t>("an array element type");
      uint64_t min = min_encoded_size(elem);
      if (min == 0)
        c.fail("metadata key '" + key + "' is an array of unknown type " + std::to_string(elem));
      v.array_type = static_cast<GgufType>(elem);
      uint64_t n = c.read<uint64_t>("an array length");
      if (n > c.remaining() / min)
        c.fail("metadata key '" + key + "' declares " + std::to_string(n) +
               " array elements, more than the file can hold");
      v.array.reserve(static_cast<size_t>(n));
      for (uint64_t k = 0; k < n; ++k) v.array.push_back(read_value(c, elem, key, depth + 1));
      break;
    }
  }
  return v;
}

}  // namespace

const char* gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::UINT8: return "u8";
    case GgufType::INT8: return "i8";
    case GgufType::UINT16: return "u16";
    case GgufType::INT16: return "i16";
    case GgufType::UINT32: return "u32";
    case GgufType::INT32: return "i32";
    case GgufType::FLOAT32: return "f32";
    case GgufType::BOOL: return "bool";
    case GgufType::STRING: return "string";
    case GgufType::ARRAY: return "array";
    case GgufType::UINT64: return "u64";
    case GgufType::INT64: return "i64";
    case GgufType::FLOAT64: return "f64";
  }
  return "?";
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::UINT16: case GgufType::INT16:
    case GgufType::UINT32: case GgufType::INT32: case GgufType::UINT64: case GgufType::INT64:
      return true;
    default: return false;
  }
}

std::string GgufValue::to_display_string(size_t max_len) const {
  std::ostringstream os;
  switch (type) {
    case GgufType::UINT8: case GgufType::UINT16: case GgufType::UINT32: case GgufType::UINT64:
      os << u; break;
    case GgufType::INT8: case GgufType::INT16: case GgufType::INT32: case GgufType::INT64:
      os << i; break;
    case GgufType::FLOAT32: case GgufType::FLOAT64: os << f; break;
    case GgufType::BOOL: os << (u ? "true" : "false"); break;
    case GgufType::STRING: {
      std::string t = s.size() > max_len ? s.substr(0, max_len) + "..." : s;
      for (char& ch : t)
        if (ch == '\n') ch = ' ';
      os << '"' << t << '"';
      break;
    }
    case GgufType::ARRAY:
      os << "[" << gguf_type_name(array_type) << " x " << array.size() << "]";
      break;
  }
  return os.str();
}

std::string TensorInfo::shape_string() const {
  std::string s = "[";
  for (int d = 0; d < n_dims; ++d) s += (d ? ", " : "") + std::to_string(ne[d]);
  return s + "]";
}

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->mapping_ = std::make_unique<MappedFile>(path);
  f->data_ = f->mapping_->data();
  f->size_ = f->mapping_->size();
  f->name_ = path;
  f->parse_all();
  return f;
}

std::unique_ptr<GgufFile> GgufFile::parse(const uint8_t* data, size_t size, const std::string& name) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->data_ = data;
  f->size_ = size;
  f->name_ = name;
  f->parse_all();
  return f;
}

void GgufFile::parse_all() {
  Cursor c(data_, size_, name_);
  if (size_ < 4) c.fail("file is too small to be GGUF");
  uint32_t magic = c.read<uint32_t>("the magic");
  if (magic != kGgufMagic) c.fail("not a GGUF file (bad magic)");
  version_ = c.read<uint32_t>("the version");
  if (version_ == 1) c.fail("GGUF version 1 is obsolete; re-convert the model with a current converter");
  if (version_ > 0xFFFF && (version_ >> 24) <= 3)
    c.fail("this is a big-endian GGUF file; only little-endian files are supported");
  if (version_ != 2 && version_ != 3)
    c.fail("unsupported GGUF version " + std::to_string(version_) + " (supported: 2, 3)");
  uint64_t n_tensors = c.read<uint64_t>("the tensor count");
  uint64_t n_kv = c.read<uint64_t>("the metadata count");
  // Every key/value takes at least 13 bytes and every tensor info at least 28.
  if (n_kv > c.remaining() / 13)
    c.fail("metadata count " + std::to_string(n_kv) + " is more than the file can hold");
  if (n_tensors > c.remaining() / 28)
    c.fail("tensor count " + std::to_string(n_tensors) + " is more than the file can hold");

  kv_.reserve(static_cast<size_t>(n_kv));
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = c.read_string("a metadata key");
    if (key.empty()) c.fail("metadata entry " + std::to_string(k) + " has an empty key");
    uint32_t type = c.read<uint32_t>("a metadata value type");
    GgufValue v = read_value(c, type, key, 0);
    if (kv_index_.count(key)) c.fail("duplicate metadata key '" + key + "'");
    kv_index_[key] = kv_.size();
    kv_.emplace_back(std::move(key), std::move(v));
  }

  if (const GgufValue* a = find("general.alignment")) {
    if (a->type != GgufType::UINT32)
      c.fail(std::string("general.alignment must be u32, not ") + gguf_type_name(a->type));
    if (a->u == 0 || (a->u & (a->u - 1)) != 0)
      c.fail("general.alignment " + std::to_string(a->u) + " is not a power of two");
    alignment_ = a->u;
  }

  tensors_.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t t = 0; t < n_tensors; ++t) {
    TensorInfo ti;
    ti.name = c.read_string("a tensor name");
    uint32_t n_dims = c.read<uint32_t>("a tensor dimension count");
    if (n_dims == 0 || n_dims > kMaxDims)
      c.fail("tensor '" + ti.name + "' has " + std::to_string(n_dims) + " dimensions (1 to 4 allowed)");
    ti.n_dims = static_cast<int>(n_dims);
    uint64_t n_el = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t ne = c.read<uint64_t>("a tensor dimension");
      if (ne == 0 || ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          n_el > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / ne)
        c.fail("tensor '" + ti.name + "' has an invalid dimension " + std::to_string(ne));
      n_el *= ne;
      ti.ne[d] = static_cast<int64_t>(ne);
    }
    uint32_t type = c.read<uint32_t>("a tensor type");
    auto tr = dtype_traits(type);
    if (!tr)
      c.fail("tensor '" + ti.name + "' has type " + ggml_type_name(type) +
             ", which Volga does not support (supported: " + supported_dtype_names() + ")");
    ti.type = tr->type;
    if (ti.ne[0] % tr->block_size != 0)
      c.fail("tensor '" + ti.name + "' row length " + std::to_string(ti.ne[0]) +
             " is not a multiple of the " + tr->name + " block size " + std::to_string(tr->block_size));
    ti.n_bytes = n_el / static_cast<uint64_t>(tr->block_size) * static_cast<uint64_t>(tr->block_bytes);
    ti.offset = c.read<uint64_t>("a tensor data offset");
    if (ti.offset % alignment_ != 0)
      c.fail("tensor '" + ti.name + "' data offset " + std::to_string(ti.offset) +
             " is not aligned to " + std::to_string(alignment_));
    if (tensor_index_.count(ti.name)) c.fail("duplicate tensor name '" + ti.name + "'");
    tensor_index_[ti.name] = tensors_.size();
    tensors_.push_back(std::move(ti));
  }

  uint64_t pos = c.pos();
  data_offset_ = (pos + alignment_ - 1) / alignment_ * alignment_;
  if (!tensors_.empty() && data_offset_ > size_)
    c.fail("file is truncated before the tensor data section");
  uint64_t data_size = size_ - std::min<uint64_t>(data_offset_, size_);
  for (TensorInfo& ti : tensors_) {
    if (ti.offset > data_size || ti.n_bytes > data_size - ti.offset)
      c.fail("tensor '" + ti.name + "' (" + std::to_string(ti.n_bytes) + " bytes at data offset " +
             std::to_string(ti.offset) + ") extends past the end of the file; the file is truncated or corrupt");
    ti.data = data_ + data_offset_ + ti.offset;
  }
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const TensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {
[[noreturn]] void wrong_type(const std::string& file, const std::string& key, const GgufValue& v,
                             const char* want) {
  throw Error("GGUF '" + file + "': metadata key '" + key + "' has type " + gguf_type_name(v.type) +
              ", expected " + want);
}
}  // namespace

std::optional<std::string> GgufFile::get_string_opt(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::STRING) wrong_type(name_, key, *v, "string");
  return v->s;
}

std::string GgufFile::get_string(const std::string& key) const {
  auto v = get_string_opt(key);
  if (!v) throw Error("GGUF '" + name_ + "': required metadata key '" + key + "' is missing");
  return *v;
}

std::optional<int64_t> GgufFile::get_int_opt(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_integer()) wrong_type(name_, key, *v, "an integer");
  switch (v->type) {
    case GgufType::UINT8: case GgufType::UINT16: case GgufType::UINT32: case GgufType::UINT64:
      if (v->u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        throw Error("GGUF '" + name_ + "': metadata key '" + key + "' value is out of range");
      return static_cast<int64_t>(v->u);
    default: return v->i;
  }
}

int64_t GgufFile::get_int(const std::string& key) const {
  auto v = get_int_opt(key);
  if (!v) throw Error("GGUF '" + name_ + "': required metadata key '" + key + "' is missing");
  return *v;
}

std::optional<double> GgufFile::get_float_opt(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type == GgufType::FLOAT32 || v->type == GgufType::FLOAT64) return v->f;
  if (v->is_integer()) return static_cast<double>(*get_int_opt(key));
  wrong_type(name_, key, *v, "a number");
}

double GgufFile::get_float(const std::string& key) const {
  auto v = get_float_opt(key);
  if (!v) throw Error("GGUF '" + name_ + "': required metadata key '" + key + "' is missing");
  return *v;
}

std::optional<bool> GgufFile::get_bool_opt(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::BOOL) wrong_type(name_, key, *v, "bool");
  return v->u != 0;
}

const std::vector<GgufValue>& GgufFile::get_array(const std::string& key, GgufType elem) const {
  const GgufValue* v = find(key);
  if (!v) throw Error("GGUF '" + name_ + "': required metadata key '" + key + "' is missing");
  if (v->type != GgufType::ARRAY) wrong_type(name_, key, *v, "an array");
  if (v->array_type != elem)
    throw Error("GGUF '" + name_ + "': metadata array '" + key + "' holds " +
                gguf_type_name(v->array_type) + ", expected " + gguf_type_name(elem));
  return v->array;
}

}  // namespace volga
