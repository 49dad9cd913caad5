// volga::Error — the one exception type thrown at load, parse and request
// boundaries. Messages are meant for the user: say what is wrong and, where
// possible, what to do about it.
#pragma once

#include <stdexcept>
#include <string>

namespace volga {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace volga
