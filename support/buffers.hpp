// Plain host <-> device copies for the tests and the benchmarks (not part of the
// library). In a CPU-only build they throw: no Cuda context can exist there.
#pragma once

#include <cstddef>
#include <memory>

namespace kfuse::support {

void* device_alloc(std::size_t bytes);
void device_free(void* ptr) noexcept;
void copy_to_device(void* dst, const void* src, std::size_t bytes);
// Callers synchronise their context first: a context's non-blocking stream is not
// ordered against these legacy-stream copies.
void copy_to_host(void* dst, const void* src, std::size_t bytes);
void device_fill_zero(void* ptr, std::size_t bytes);

struct DeviceDeleter {
  void operator()(void* p) const noexcept { device_free(p); }
};
using DevicePtr = std::unique_ptr<void, DeviceDeleter>;

}  // namespace kfuse::support
