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

// The service cannot answer now, through no fault of the request (e.g. a rank
// of the MPI job serving the model has stopped): the server answers 503.
class UnavailableError : public Error {
 public:
  using Error::Error;
};

}  // namespace volga
