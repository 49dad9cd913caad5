// Hugging Face checkpoints: safetensors files (one, or shards listed in
// model.safetensors.index.json) and the config.json beside them.
//
// The reader validates the header length, every dtype, shape and byte range
// against the file before use; a truncated or hostile file produces a
// volga::Error naming the file and the tensor.
// Ownership: SafetensorsModel owns the mappings; tensor data pointers stay
// valid for its lifetime. Thread-safety: immutable after construction.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "util/mapped_file.h"

namespace volga {

struct SafetensorsTensor {
  std::string name;
  std::string dtype;           // "F32", "F16", "BF16" (others are rejected when read)
  std::vector<int64_t> shape;  // row-major, shape.back() is contiguous
  const uint8_t* data = nullptr;
  uint64_t n_bytes = 0;
  std::string file;

  int64_t n_elements() const;
  // The tensor as float32 (F32, F16 or BF16 source). Throws for other dtypes.
  std::vector<float> to_f32() const;
};

class SafetensorsModel {
 public:
  // A folder holding model.safetensors or model.safetensors.index.json (+ shards),
  // or one .safetensors file.
  static std::unique_ptr<SafetensorsModel> open(const std::string& path);
  // Parses one in-memory file (tests, fuzzing); the caller keeps data alive.
  static std::unique_ptr<SafetensorsModel> parse(const uint8_t* data, size_t size, const std::string& name);

  const std::map<std::string, SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* find(const std::string& name) const;

 private:
  void add_file(const uint8_t* data, size_t size, const std::string& name);

  std::vector<std::unique_ptr<MappedFile>> maps_;
  std::map<std::string, SafetensorsTensor> tensors_;
};

// Reads and parses a JSON file; throws volga::Error naming the file.
nlohmann::json read_json_file(const std::string& path);

}  // namespace volga
