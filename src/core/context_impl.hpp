// The state behind kfuse::Context, visible to src/ and kernels/ only.
#pragma once

#include <memory>

#include "kfuse/context.hpp"

namespace kfuse {

struct Context::Impl {
  Backend backend = Backend::Cpu;
  int device = -1;
  cudaStream stream = nullptr;
  bool owns_stream = false;
  cublasHandle cublas = nullptr;
  std::shared_ptr<Allocator> allocator;

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl();
};

}  // namespace kfuse
