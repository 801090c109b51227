// Fuzz cases for the C API's common part (kfuse.h): errors and contexts.
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "enum_calls.h"
#include "fuzz_core.hpp"

namespace fuzz {
namespace {

// A context pointer the call fills; a created context is destroyed at once.
struct ContextOut {
  kfuse_context_t value = nullptr;
};

template <class Create>
void create(Builder& b, Create make) {
  Case& c = b.c();
  c.uses_ctx = false;
  c.build_may_refuse = true;
  auto out = std::make_shared<ContextOut>();
  const bool null_out = b.rng().chance(0.3);
  if (null_out) c.reject("out NULL");
  c.log.push_back(null_out ? "out NULL" : "out given");
  c.struct_outputs.push_back({&out->value, sizeof out->value});
  c.names.insert(c.names.end(), {"out", "device", "stream"});
  c.call = [out, null_out, make] {
    const kfuse_status_t s = make(null_out ? nullptr : &out->value);
    if (s == KFUSE_SUCCESS) {
      kfuse_context_destroy(out->value);
      out->value = nullptr;
    }
    return s;
  };
}

int device_number(Rng& r) {
  return r.pick(std::vector<int>{0, 1, -1, 7, 1 << 30, -(1 << 30)});
}

void create_cpu(Builder& b) {
  create(b, [](kfuse_context_t* out) { return kfuse_context_create_cpu(out); });
}
void create_best(Builder& b) {
  create(b, [](kfuse_context_t* out) { return kfuse_context_create_best(out); });
}
void create_cuda(Builder& b) {
  const int device = device_number(b.rng());
  b.c().log.push_back("device " + std::to_string(device));
  create(b, [device](kfuse_context_t* out) { return kfuse_context_create_cuda(device, out); });
}
void create_cuda_on_stream(Builder& b) {
  // Only the legacy default stream: the library cannot check a stream handle.
  const int device = device_number(b.rng());
  b.c().log.push_back("device " + std::to_string(device));
  create(b, [device](kfuse_context_t* out) {
    return kfuse_context_create_cuda_on_stream(device, nullptr, out);
  });
}

void backend(Builder& b) {
  Case& c = b.c();
  auto out = std::make_shared<kfuse_backend_t>(KFUSE_BACKEND_CUDA);
  const bool null_out = b.rng().chance(0.3);
  if (null_out) c.reject("out NULL");
  c.struct_outputs.push_back({out.get(), sizeof *out});
  c.names.push_back("out");
  c.call = [&c, out, null_out] {
    return kfuse_context_backend(c.ctx, null_out ? nullptr : out.get());
  };
}

void synchronize(Builder& b) {
  Case& c = b.c();
  c.call = [&c] { return kfuse_context_synchronize(c.ctx); };
}

void set_draw_cache_budget(Builder& b) {
  Case& c = b.c();
  const std::uint64_t bytes = b.rng().pick(
      std::vector<std::uint64_t>{0, 1, 4096, std::uint64_t(1) << 40, ~std::uint64_t(0)});
  c.log.push_back("bytes " + std::to_string(bytes));
  c.call = [&c, bytes] { return kfuse_context_set_draw_cache_budget(c.ctx, bytes); };
}

void draw_cache_bytes(Builder& b) {
  Case& c = b.c();
  auto out = std::make_shared<std::uint64_t>(0);
  const bool null_out = b.rng().chance(0.3);
  if (null_out) c.reject("out NULL");
  c.struct_outputs.push_back({out.get(), sizeof *out});
  c.names.push_back("out");
  c.call = [&c, out, null_out] {
    return kfuse_context_draw_cache_bytes(c.ctx, null_out ? nullptr : out.get());
  };
}

void clear_draw_cache(Builder& b) {
  Case& c = b.c();
  c.call = [&c] { return kfuse_context_clear_draw_cache(c.ctx); };
}

// Functions without a status: any int is a status to name; the message survives.
void names_and_errors(Builder& b) {
  Rng& r = b.rng();
  const int status = r.pick(std::vector<int>{0, 1, 9, 10, -1, 99, 1 << 30});
  const char* name = fuzz_status_name(status);
  if (name == nullptr || std::strlen(name) == 0) {
    std::fprintf(stderr, "FINDING [kfuse_status_name] no name for %d\n", status);
    std::abort();
  }
  (void)kfuse_cuda_device_count();
  (void)std::strlen(kfuse_last_error());
  kfuse_context_destroy(nullptr);  // a no-op
}

}  // namespace

std::vector<EntryPoint> context_entry_points() {
  return {{"kfuse_context_create_cpu", create_cpu},
          {"kfuse_context_create_best", create_best},
          {"kfuse_context_create_cuda", create_cuda},
          {"kfuse_context_create_cuda_on_stream", create_cuda_on_stream},
          {"kfuse_context_backend", backend},
          {"kfuse_context_synchronize", synchronize},
          {"kfuse_context_set_draw_cache_budget", set_draw_cache_budget},
          {"kfuse_context_draw_cache_bytes", draw_cache_bytes},
          {"kfuse_context_clear_draw_cache", clear_draw_cache},
          {"kfuse_status_name", names_and_errors}};
}

}  // namespace fuzz
