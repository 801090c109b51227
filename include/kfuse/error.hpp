// kfuse::Error and the status codes shared by the C++ and C APIs.
#pragma once

#include <stdexcept>
#include <string>

namespace kfuse {

// Numeric values are part of the C ABI (kfuse.h mirrors them): append, never renumber.
enum class Status : int {
  Success = 0,
  InvalidArgument = 1,  // a value is out of its domain (sigma <= 0, k > N, ...)
  ShapeMismatch = 2,    // extents or leading dimensions disagree
  MemoryLocation = 3,   // host memory given to a CUDA context, or the reverse
  Unsupported = 4,      // a valid request this build or device cannot serve
  NoDevice = 5,         // a CUDA context was asked for but no usable device exists
  CudaError = 6,        // the CUDA runtime reported an error
  CublasError = 7,      // cuBLAS reported an error
  OutOfMemory = 8,      // host or device allocation failed
  Internal = 9,         // a bug in kfuse: please report it
};

// The status's name as written above ("InvalidArgument"), for messages and logs.
const char* status_name(Status status) noexcept;

// Every failure kfuse reports is an Error; the message names the operation and the
// argument, and gives the expected and the actual value.
class Error : public std::runtime_error {
 public:
  Error(Status status, const std::string& message) : std::runtime_error(message), status_(status) {}
  Status status() const noexcept { return status_; }

 private:
  Status status_;
};

}  // namespace kfuse
