// The state behind kfuse::Context, visible to src/ and kernels/ only.
#pragma once

#include <memory>

#include "kfuse/context.hpp"
#include "src/core/lru_cache.hpp"

namespace kfuse {

struct Context::Impl {
  Backend backend = Backend::Cpu;
  int device = -1;
  cudaStream stream = nullptr;
  bool owns_stream = false;
  cublasHandle cublas = nullptr;
  std::shared_ptr<Allocator> allocator;
  detail::LruCache draw_cache;  // see Context::set_draw_cache_budget

  Impl();

  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl();
};

namespace detail {

// The Impl behind a Context, for src/ (Context's members are private to users).
struct ContextAccess {
  static Context::Impl& impl(Context& ctx) noexcept { return *ctx.impl_; }
};

inline LruCache& draw_cache(Context& ctx) noexcept {
  return ContextAccess::impl(ctx).draw_cache;
}

}  // namespace detail

}  // namespace kfuse
