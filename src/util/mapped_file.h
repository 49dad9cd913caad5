// MappedFile — a read-only memory mapping of a whole file.
// Ownership: the MappedFile owns the mapping; pointers into it stay valid for
// its lifetime. Thread-safety: immutable after construction, safe to share.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace volga {

class MappedFile {
 public:
  // Throws volga::Error naming the path and the OS error when it cannot open or map.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace volga
