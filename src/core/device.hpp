// The narrow interface between host code and the CUDA runtime.
//
// Two implementations: device_cuda.cpp (KFUSE_WITH_CUDA=ON) and device_none.cpp
// (a CPU-only build, which compiles without any CUDA header). Everything else in
// src/ stays free of #ifdefs.
#pragma once

#include <memory>

#include "kfuse/context.hpp"

namespace kfuse::detail {

// Usable devices; 0 without a driver. Computed once, never throws.
int device_count() noexcept;

enum class PointerKind { Unknown, Host, Device };
// Where `ptr` lives according to the CUDA runtime: Device for device or managed
// memory, Host for pageable or pinned host memory, Unknown when no device is usable.
PointerKind pointer_kind(const void* ptr) noexcept;

cudaStream create_stream(int device);
void destroy_stream(int device, cudaStream stream) noexcept;
void synchronize_stream(int device, cudaStream stream);
cublasHandle create_cublas(int device, cudaStream stream);
void destroy_cublas(int device, cublasHandle handle) noexcept;
std::shared_ptr<Allocator> make_stream_ordered_allocator(int device);

}  // namespace kfuse::detail
