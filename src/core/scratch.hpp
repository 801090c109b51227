// Scratch memory in the context's memory space: the host heap for a Cpu context,
// the context's allocator for a Cuda one (released stream-ordered when it goes out
// of scope, so work already enqueued that uses it stays valid).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

#include "kfuse/context.hpp"

namespace kfuse::detail {

// Device workspace alignment every kernel may rely on (Allocator's contract).
constexpr std::size_t kDeviceAlignment = 256;

// The bytes of a workspace of `count` elements, where `count` was derived from caller
// extents with the checked arithmetic of checked.hpp (nullopt when that overflowed). Past
// 64 bits no such buffer can exist: OutOfMemory, never a wrapped size.
std::size_t workspace_bytes(std::optional<std::int64_t> count, std::size_t element_bytes);

class Scratch {
 public:
  Scratch(Context& ctx, std::size_t bytes);
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  Context& ctx_;
  std::size_t bytes_;
  std::unique_ptr<unsigned char[]> host_;
  void* ptr_ = nullptr;
};

}  // namespace kfuse::detail
