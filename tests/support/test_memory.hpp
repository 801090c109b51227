// Test arrays that live where a backend needs them: host memory for the CPU path,
// a device copy for the CUDA path. Tests fill and check them on the host.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "buffers.hpp"
#include "kfuse/context.hpp"
#include "kfuse/view.hpp"

namespace kfuse::test {

// Host values plus, for a Cuda backend, their device copy.
template <class T>
class TestArray {
 public:
  TestArray(Backend backend, std::vector<T> values) : backend_(backend), host_(std::move(values)) {
    if (backend_ == Backend::Cuda && !host_.empty()) {
      device_.reset(support::device_alloc(bytes()));
      support::copy_to_device(device_.get(), host_.data(), bytes());
    }
  }
  T* data() { return backend_ == Backend::Cuda ? static_cast<T*>(device_.get()) : host_.data(); }
  const T* data() const {
    return backend_ == Backend::Cuda ? static_cast<const T*>(device_.get()) : host_.data();
  }
  Memory memory() const { return backend_ == Backend::Cuda ? Memory::Device : Memory::Host; }

  MatrixView<T> matrix(std::int64_t rows, std::int64_t cols, std::int64_t ld = -1) {
    return {data(), rows, cols, ld < 0 ? cols : ld, memory()};
  }
  MatrixView<const T> cmatrix(std::int64_t rows, std::int64_t cols, std::int64_t ld = -1) const {
    return {data(), rows, cols, ld < 0 ? cols : ld, memory()};
  }
  VectorView<T> vector() { return {data(), static_cast<std::int64_t>(host_.size()), memory()}; }
  VectorView<const T> cvector() const {
    return {data(), static_cast<std::int64_t>(host_.size()), memory()};
  }

  // The current values (downloaded from the device for a Cuda backend).
  std::vector<T> values() const {
    if (backend_ != Backend::Cuda || host_.empty()) return host_;
    std::vector<T> out(host_.size());
    support::copy_to_host(out.data(), device_.get(), bytes());
    return out;
  }

 private:
  std::size_t bytes() const { return host_.size() * sizeof(T); }
  Backend backend_;
  std::vector<T> host_;
  support::DevicePtr device_;
};

}  // namespace kfuse::test
