// Human-readable names of the shared enumerations.
#include "kfuse/error.hpp"
#include "kfuse/precision.hpp"
#include "kfuse/view.hpp"

namespace kfuse {

const char* status_name(Status status) noexcept {
  switch (status) {
    case Status::Success:
      return "Success";
    case Status::InvalidArgument:
      return "InvalidArgument";
    case Status::ShapeMismatch:
      return "ShapeMismatch";
    case Status::MemoryLocation:
      return "MemoryLocation";
    case Status::Unsupported:
      return "Unsupported";
    case Status::NoDevice:
      return "NoDevice";
    case Status::CudaError:
      return "CudaError";
    case Status::CublasError:
      return "CublasError";
    case Status::OutOfMemory:
      return "OutOfMemory";
    case Status::Internal:
      return "Internal";
  }
  return "Unknown";
}

const char* dtype_name(DType dtype) noexcept {
  switch (dtype) {
    case DType::F32:
      return "f32";
    case DType::F64:
      return "f64";
    case DType::BF16:
      return "bf16";
    case DType::F16:
      return "f16";
    case DType::I32:
      return "i32";
    case DType::I64:
      return "i64";
  }
  return "unknown";
}

const char* memory_name(Memory memory) noexcept {
  switch (memory) {
    case Memory::Host:
      return "host";
    case Memory::Device:
      return "device";
  }
  return "unknown";
}

const char* precision_name(Precision precision) noexcept {
  switch (precision) {
    case Precision::Exact:
      return "exact";
    case Precision::TF32:
      return "tf32";
    case Precision::BF16:
      return "bf16";
  }
  return "unknown";
}

}  // namespace kfuse
