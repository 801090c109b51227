// The C API's common part: errors and contexts. Each op family's entry points live
// in src/<family>/c_api.cpp.
#include "kfuse/kfuse.h"

#include <algorithm>
#include <cstddef>
#include <limits>

#include "src/core/c_api_util.hpp"

// The enumerations the C API hands back by a cast (statuses, backends) must number
// their values as the C++ ones do; those it reads are checked in c_api_util.hpp.
#define KFUSE_SAME_VALUE(c, cpp) \
  static_assert(static_cast<int>(c) == static_cast<int>(cpp), #c " must equal " #cpp)
KFUSE_SAME_VALUE(KFUSE_SUCCESS, kfuse::Status::Success);
KFUSE_SAME_VALUE(KFUSE_INVALID_ARGUMENT, kfuse::Status::InvalidArgument);
KFUSE_SAME_VALUE(KFUSE_SHAPE_MISMATCH, kfuse::Status::ShapeMismatch);
KFUSE_SAME_VALUE(KFUSE_MEMORY_LOCATION, kfuse::Status::MemoryLocation);
KFUSE_SAME_VALUE(KFUSE_UNSUPPORTED, kfuse::Status::Unsupported);
KFUSE_SAME_VALUE(KFUSE_NO_DEVICE, kfuse::Status::NoDevice);
KFUSE_SAME_VALUE(KFUSE_CUDA_ERROR, kfuse::Status::CudaError);
KFUSE_SAME_VALUE(KFUSE_CUBLAS_ERROR, kfuse::Status::CublasError);
KFUSE_SAME_VALUE(KFUSE_OUT_OF_MEMORY, kfuse::Status::OutOfMemory);
KFUSE_SAME_VALUE(KFUSE_INTERNAL, kfuse::Status::Internal);
KFUSE_SAME_VALUE(KFUSE_BACKEND_CPU, kfuse::Backend::Cpu);
KFUSE_SAME_VALUE(KFUSE_BACKEND_CUDA, kfuse::Backend::Cuda);
#undef KFUSE_SAME_VALUE

namespace kfuse::c_api {

std::string& last_error() {
  thread_local std::string message;
  return message;
}

namespace {

kfuse_status_t create(kfuse_context_t* out, kfuse::Context (*make)(int, void*), int device,
                      void* stream, const char* op) {
  return guarded([&] {
    if (out == nullptr) fail(kfuse::Status::InvalidArgument, op, "out", "is null");
    *out = new kfuse_context_s{make(device, stream)};
  });
}

// A context's property into *out (checked non-null): the C getters' one shape.
template <class Out, class Get>
kfuse_status_t context_query(kfuse_context_t ctx, const char* op, Out* out, Get get) {
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    if (out == nullptr) fail(kfuse::Status::InvalidArgument, op, "out", "is null");
    *out = get(c);
  });
}

}  // namespace
}  // namespace kfuse::c_api

using namespace kfuse::c_api;

extern "C" {

const char* kfuse_last_error(void) {
  return last_error().c_str();
}

const char* kfuse_status_name(kfuse_status_t status) {
  // Any int may arrive here: read it without loading the enum (see enum_integer).
  return kfuse::status_name(static_cast<kfuse::Status>(enum_integer(status)));
}

int kfuse_cuda_device_count(void) {
  return kfuse::cuda_device_count();
}

kfuse_status_t kfuse_context_create_cpu(kfuse_context_t* out) {
  return create(
      out, [](int, void*) { return kfuse::Context::cpu(); }, 0, nullptr,
      "kfuse_context_create_cpu");
}

kfuse_status_t kfuse_context_create_cuda(int device, kfuse_context_t* out) {
  return create(
      out, [](int dev, void*) { return kfuse::Context::cuda(dev); }, device, nullptr,
      "kfuse_context_create_cuda");
}

kfuse_status_t kfuse_context_create_cuda_on_stream(int device, void* stream, kfuse_context_t* out) {
  return create(
      out,
      [](int dev, void* s) { return kfuse::Context::cuda(dev, static_cast<kfuse::cudaStream>(s)); },
      device, stream, "kfuse_context_create_cuda_on_stream");
}

kfuse_status_t kfuse_context_create_best(kfuse_context_t* out) {
  return create(
      out, [](int, void*) { return kfuse::Context::best(); }, 0, nullptr,
      "kfuse_context_create_best");
}

void kfuse_context_destroy(kfuse_context_t ctx) {
  delete ctx;
}

kfuse_status_t kfuse_context_backend(kfuse_context_t ctx, kfuse_backend_t* out) {
  return context_query(ctx, "kfuse_context_backend", out,
                       [](kfuse::Context& c) { return static_cast<kfuse_backend_t>(c.backend()); });
}

kfuse_status_t kfuse_context_synchronize(kfuse_context_t ctx) {
  return guarded([&] { context_of(ctx, "kfuse_context_synchronize").synchronize(); });
}

kfuse_status_t kfuse_context_set_draw_cache_budget(kfuse_context_t ctx, uint64_t bytes) {
  return guarded([&] {
    context_of(ctx, "kfuse_context_set_draw_cache_budget")
        .set_draw_cache_budget(static_cast<std::size_t>(
            std::min<uint64_t>(bytes, std::numeric_limits<std::size_t>::max())));
  });
}

kfuse_status_t kfuse_context_draw_cache_bytes(kfuse_context_t ctx, uint64_t* out) {
  return context_query(ctx, "kfuse_context_draw_cache_bytes", out, [](kfuse::Context& c) {
    return static_cast<uint64_t>(c.draw_cache_bytes());
  });
}

kfuse_status_t kfuse_context_clear_draw_cache(kfuse_context_t ctx) {
  return guarded([&] { context_of(ctx, "kfuse_context_clear_draw_cache").clear_draw_cache(); });
}

}  // extern "C"
