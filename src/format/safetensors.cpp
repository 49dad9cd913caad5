#include "format/safetensors.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "tensor/half.h"
#include "util/error.h"

namespace volga {

namespace fs = std::filesystem;

int64_t SafetensorsTensor::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<float> SafetensorsTensor::to_f32() const {
  const size_t n = static_cast<size_t>(n_elements());
  std::vector<float> out(n);
  if (dtype == "F32") {
    std::memcpy(out.data(), data, n * 4);
  } else if (dtype == "F16" || dtype == "BF16") {
    for (size_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, data + 2 * i, 2);
      out[i] = dtype == "F16" ? fp16_to_fp32(h) : bf16_to_fp32(h);
    }
  } else {
    throw Error("'" + file + "': tensor '" + name + "' has dtype " + dtype + " (supported: F32, F16, BF16)");
  }
  return out;
}

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot open '" + path + "'");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error("'" + path + "' is not valid JSON: " + e.what());
  }
}

void SafetensorsModel::add_file(const uint8_t* data, size_t size, const std::string& name) {
  if (size < 8) throw Error("'" + name + "' is not a safetensors file (shorter than 8 bytes)");
  uint64_t header_len;
  std::memcpy(&header_len, data, 8);
  if (header_len > size - 8 || header_len > (100u << 20))
    throw Error("'" + name + "': safetensors header length " + std::to_string(header_len) +
                " exceeds the file (" + std::to_string(size) + " bytes); truncated or not a safetensors file");
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(data + 8, data + 8 + header_len);
  } catch (const nlohmann::json::exception& e) {
    throw Error("'" + name + "': safetensors header is not valid JSON: " + e.what());
  }
  if (!h.is_object()) throw Error("'" + name + "': safetensors header is not a JSON object");
  const uint64_t base = 8 + header_len, data_size = size - base;
  for (const auto& item : h.items()) {
    const std::string& key = item.key();
    const nlohmann::json& info = item.value();
    if (key == "__metadata__") continue;
    auto bad = [&](const std::string& why) { return Error("'" + name + "': tensor '" + key + "': " + why); };
    if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") || !info.contains("data_offsets"))
      throw bad("entry needs dtype, shape and data_offsets");
    SafetensorsTensor t;
    t.name = key;
    t.file = name;
    try {
      t.dtype = info.at("dtype").get<std::string>();
      for (const auto& d : info.at("shape")) t.shape.push_back(d.get<int64_t>());
      const auto& off = info.at("data_offsets");
      if (!off.is_array() || off.size() != 2) throw bad("data_offsets must be [begin, end]");
      uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
      if (b > e || e > data_size) throw bad("data_offsets lie outside the file (truncated?)");
      t.data = data + base + b;
      t.n_bytes = e - b;
    } catch (const nlohmann::json::exception& e) {
      throw bad(std::string("malformed entry: ") + e.what());
    }
    const int width = t.dtype == "F32" ? 4 : (t.dtype == "F16" || t.dtype == "BF16") ? 2 : 0;
    uint64_t n = 1;
    for (int64_t d : t.shape) {
      if (d < 0 || (d > 0 && n > (uint64_t{1} << 48) / static_cast<uint64_t>(d))) throw bad("invalid shape");
      n *= static_cast<uint64_t>(d);
    }
    if (width != 0 && n * static_cast<uint64_t>(width) != t.n_bytes)
      throw bad("shape needs " + std::to_string(n * static_cast<uint64_t>(width)) + " bytes but the entry has " +
                std::to_string(t.n_bytes));
    if (tensors_.count(key)) throw bad("appears twice");
    tensors_.emplace(key, std::move(t));
  }
}

std::unique_ptr<SafetensorsModel> SafetensorsModel::parse(const uint8_t* data, size_t size, const std::string& name) {
  std::unique_ptr<SafetensorsModel> m(new SafetensorsModel());
  m->add_file(data, size, name);
  return m;
}

std::unique_ptr<SafetensorsModel> SafetensorsModel::open(const std::string& path) {
  std::unique_ptr<SafetensorsModel> m(new SafetensorsModel());
  std::vector<std::string> files;
  if (fs::is_directory(path)) {
    const fs::path dir(path);
    if (fs::exists(dir / "model.safetensors")) {
      files.push_back((dir / "model.safetensors").string());
    } else if (fs::exists(dir / "model.safetensors.index.json")) {
      const std::string index = (dir / "model.safetensors.index.json").string();
      nlohmann::json j = read_json_file(index);
      std::set<std::string> shards;
      if (!j.contains("weight_map") || !j["weight_map"].is_object())
        throw Error("'" + index + "' has no weight_map object");
      for (const auto& [k, v] : j["weight_map"].items()) {
        if (!v.is_string()) throw Error("'" + index + "': weight_map entry '" + k + "' is not a file name");
        std::string f = v.get<std::string>();
        if (f.find('/') != std::string::npos) throw Error("'" + index + "': shard name '" + f + "' contains a '/'");
        shards.insert(f);
      }
      for (const auto& f : shards) files.push_back((dir / f).string());
    } else {
      throw Error("'" + path + "' holds neither model.safetensors nor model.safetensors.index.json");
    }
  } else {
    files.push_back(path);
  }
  for (const auto& f : files) {
    m->maps_.push_back(std::make_unique<MappedFile>(f));
    m->add_file(m->maps_.back()->data(), m->maps_.back()->size(), f);
  }
  return m;
}

const SafetensorsTensor* SafetensorsModel::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

}  // namespace volga
