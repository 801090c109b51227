// The C API: converts C descriptors to views, calls the C++ API, and turns every
// exception into a status code plus a thread-local message.
#include "kfuse/kfuse.h"

#include <new>
#include <string>
#include <utility>

#include "kfuse/kfuse.hpp"

struct kfuse_context_s {
  kfuse::Context ctx;
};

namespace {

thread_local std::string g_last_error;

template <class F>
kfuse_status_t guarded(F&& body) noexcept {
  try {
    body();
    return KFUSE_SUCCESS;
  } catch (const kfuse::Error& e) {
    g_last_error = e.what();
    return static_cast<kfuse_status_t>(e.status());
  } catch (const std::bad_alloc&) {
    g_last_error = "out of host memory";
    return KFUSE_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    g_last_error = std::string("internal error: ") + e.what();
    return KFUSE_INTERNAL;
  } catch (...) {
    g_last_error = "internal error: unknown exception";
    return KFUSE_INTERNAL;
  }
}

[[noreturn]] void fail(kfuse::Status status, const char* op, const char* argument,
                       const std::string& what) {
  throw kfuse::Error(status, std::string(op) + ": argument '" + argument + "': " + what);
}

kfuse::Context& context_of(kfuse_context_t ctx, const char* op) {
  if (ctx == nullptr) fail(kfuse::Status::InvalidArgument, op, "ctx", "is null");
  return ctx->ctx;
}

kfuse::Memory memory_of(kfuse_memory_t m, const char* op, const char* argument) {
  if (m != KFUSE_HOST && m != KFUSE_DEVICE)
    fail(kfuse::Status::InvalidArgument, op, argument,
         "unknown memory location " + std::to_string(static_cast<int>(m)));
  return static_cast<kfuse::Memory>(m);
}

void expect_dtype(kfuse_dtype_t actual, kfuse_dtype_t expected, const char* op,
                  const char* argument) {
  if (actual != expected)
    fail(kfuse::Status::InvalidArgument, op, argument,
         std::string("expected dtype ") + kfuse::dtype_name(static_cast<kfuse::DType>(expected)) +
             " (that of the first matrix), got " +
             kfuse::dtype_name(static_cast<kfuse::DType>(actual)));
}

template <class T>
kfuse::MatrixView<T> matrix(const kfuse_matrix_t* m, kfuse_dtype_t dtype, const char* op,
                            const char* argument) {
  if (m == nullptr) fail(kfuse::Status::InvalidArgument, op, argument, "is null");
  expect_dtype(m->dtype, dtype, op, argument);
  return {static_cast<T*>(m->data), m->rows, m->cols, m->ld, memory_of(m->memory, op, argument)};
}

// An absent optional vector (NULL descriptor, or NULL data with size 0) gives an
// absent view.
template <class T>
kfuse::VectorView<T> optional_vector(const kfuse_vector_t* v, kfuse_dtype_t dtype,
                                     const char* op, const char* argument) {
  if (v == nullptr || (v->data == nullptr && v->size == 0)) return {};
  expect_dtype(v->dtype, dtype, op, argument);
  return {static_cast<T*>(v->data), v->size, memory_of(v->memory, op, argument)};
}

template <class T>
kfuse::VectorView<T> vector(const kfuse_vector_t* v, kfuse_dtype_t dtype, const char* op,
                            const char* argument) {
  if (v == nullptr) fail(kfuse::Status::InvalidArgument, op, argument, "is null");
  expect_dtype(v->dtype, dtype, op, argument);
  return {static_cast<T*>(v->data), v->size, memory_of(v->memory, op, argument)};
}

template <class Options>
const Options& options_of(const Options* o, const char* op) {
  if (o == nullptr) fail(kfuse::Status::InvalidArgument, op, "options", "is null");
  return *o;
}

// Calls body.template operator()<T>() with T the float type named by the first
// matrix's dtype.
template <class Body>
void dispatch_float(const kfuse_matrix_t* first, const char* op, const char* argument,
                    Body&& body) {
  if (first == nullptr) fail(kfuse::Status::InvalidArgument, op, argument, "is null");
  switch (first->dtype) {
    case KFUSE_F32:
      return body(float{});
    case KFUSE_F64:
      return body(double{});
    default:
      fail(kfuse::Status::Unsupported, op, argument,
           std::string("expected dtype f32 or f64, got ") +
               kfuse::dtype_name(static_cast<kfuse::DType>(first->dtype)));
  }
}

kfuse::Precision precision_of(kfuse_precision_t p) { return static_cast<kfuse::Precision>(p); }

kfuse_status_t create(kfuse_context_t* out, kfuse::Context (*make)(int, void*), int device,
                      void* stream, const char* op) {
  return guarded([&] {
    if (out == nullptr) fail(kfuse::Status::InvalidArgument, op, "out", "is null");
    *out = new kfuse_context_s{make(device, stream)};
  });
}

}  // namespace

extern "C" {

const char* kfuse_last_error(void) { return g_last_error.c_str(); }

const char* kfuse_status_name(kfuse_status_t status) {
  return kfuse::status_name(static_cast<kfuse::Status>(status));
}

int kfuse_cuda_device_count(void) { return kfuse::cuda_device_count(); }

kfuse_status_t kfuse_context_create_cpu(kfuse_context_t* out) {
  return create(out, [](int, void*) { return kfuse::Context::cpu(); }, 0, nullptr,
                "kfuse_context_create_cpu");
}

kfuse_status_t kfuse_context_create_cuda(int device, kfuse_context_t* out) {
  return create(out, [](int dev, void*) { return kfuse::Context::cuda(dev); }, device, nullptr,
                "kfuse_context_create_cuda");
}

kfuse_status_t kfuse_context_create_cuda_on_stream(int device, void* stream, kfuse_context_t* out) {
  return create(
      out,
      [](int dev, void* s) { return kfuse::Context::cuda(dev, static_cast<kfuse::cudaStream>(s)); },
      device, stream, "kfuse_context_create_cuda_on_stream");
}

kfuse_status_t kfuse_context_create_best(kfuse_context_t* out) {
  return create(out, [](int, void*) { return kfuse::Context::best(); }, 0, nullptr,
                "kfuse_context_create_best");
}

void kfuse_context_destroy(kfuse_context_t ctx) { delete ctx; }

kfuse_status_t kfuse_context_backend(kfuse_context_t ctx, kfuse_backend_t* out) {
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, "kfuse_context_backend");
    if (out == nullptr)
      fail(kfuse::Status::InvalidArgument, "kfuse_context_backend", "out", "is null");
    *out = static_cast<kfuse_backend_t>(c.backend());
  });
}

kfuse_status_t kfuse_context_synchronize(kfuse_context_t ctx) {
  return guarded([&] { context_of(ctx, "kfuse_context_synchronize").synchronize(); });
}

kfuse_gauss_matvec_options_t kfuse_gauss_matvec_options_default(void) {
  return {1.0, 1.0, 0.0, KFUSE_PRECISION_EXACT};
}
kfuse_kde_options_t kfuse_kde_options_default(void) { return {1.0, 1, KFUSE_PRECISION_EXACT}; }
kfuse_gauss_grad_options_t kfuse_gauss_grad_options_default(void) {
  return {1.0, KFUSE_PRECISION_EXACT};
}
kfuse_mmd2_options_t kfuse_mmd2_options_default(void) { return {1.0, 0, KFUSE_PRECISION_EXACT}; }

kfuse_status_t kfuse_gauss_matvec(kfuse_context_t ctx, const kfuse_matrix_t* X,
                                  const kfuse_matrix_t* Y, const kfuse_matrix_t* V,
                                  const kfuse_matrix_t* out,
                                  const kfuse_gauss_matvec_options_t* options) {
  static const char* op = "kfuse_gauss_matvec";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const auto& o = options_of(options, op);
    dispatch_float(X, op, "X", [&](auto zero) {
      using T = decltype(zero);
      kfuse::gauss_matvec(c, matrix<const T>(X, X->dtype, op, "X"),
                          matrix<const T>(Y, X->dtype, op, "Y"),
                          matrix<const T>(V, X->dtype, op, "V"), matrix<T>(out, X->dtype, op, "out"),
                          kfuse::GaussMatvecOptions{o.sigma, o.alpha, o.beta,
                                                    precision_of(o.precision)});
    });
  });
}

kfuse_status_t kfuse_kde(kfuse_context_t ctx, const kfuse_matrix_t* queries,
                         const kfuse_matrix_t* Y, const kfuse_vector_t* weights,
                         const kfuse_vector_t* out, const kfuse_kde_options_t* options) {
  static const char* op = "kfuse_kde";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const auto& o = options_of(options, op);
    dispatch_float(queries, op, "queries", [&](auto zero) {
      using T = decltype(zero);
      const kfuse_dtype_t dt = queries->dtype;
      kfuse::kde(c, matrix<const T>(queries, dt, op, "queries"), matrix<const T>(Y, dt, op, "Y"),
                 optional_vector<const T>(weights, dt, op, "weights"),
                 vector<T>(out, dt, op, "out"),
                 kfuse::KdeOptions{o.sigma, o.log != 0, precision_of(o.precision)});
    });
  });
}

kfuse_status_t kfuse_gauss_matvec_grad_x(kfuse_context_t ctx, const kfuse_matrix_t* X,
                                         const kfuse_matrix_t* Y, const kfuse_matrix_t* V,
                                         const kfuse_matrix_t* U, const kfuse_matrix_t* grad,
                                         const kfuse_gauss_grad_options_t* options) {
  static const char* op = "kfuse_gauss_matvec_grad_x";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const auto& o = options_of(options, op);
    dispatch_float(X, op, "X", [&](auto zero) {
      using T = decltype(zero);
      const kfuse_dtype_t dt = X->dtype;
      kfuse::gauss_matvec_grad_x(
          c, matrix<const T>(X, dt, op, "X"), matrix<const T>(Y, dt, op, "Y"),
          matrix<const T>(V, dt, op, "V"), matrix<const T>(U, dt, op, "U"),
          matrix<T>(grad, dt, op, "grad"),
          kfuse::GaussGradOptions{o.sigma, precision_of(o.precision)});
    });
  });
}

kfuse_status_t kfuse_mean_shift_step(kfuse_context_t ctx, const kfuse_matrix_t* X,
                                     const kfuse_matrix_t* Y, const kfuse_vector_t* weights,
                                     const kfuse_matrix_t* out,
                                     const kfuse_gauss_grad_options_t* options) {
  static const char* op = "kfuse_mean_shift_step";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const auto& o = options_of(options, op);
    dispatch_float(X, op, "X", [&](auto zero) {
      using T = decltype(zero);
      const kfuse_dtype_t dt = X->dtype;
      kfuse::mean_shift_step(c, matrix<const T>(X, dt, op, "X"), matrix<const T>(Y, dt, op, "Y"),
                             optional_vector<const T>(weights, dt, op, "weights"),
                             matrix<T>(out, dt, op, "out"),
                             kfuse::GaussGradOptions{o.sigma, precision_of(o.precision)});
    });
  });
}

kfuse_status_t kfuse_mmd2(kfuse_context_t ctx, const kfuse_matrix_t* X, const kfuse_matrix_t* Y,
                          const kfuse_vector_t* out, const kfuse_mmd2_options_t* options) {
  static const char* op = "kfuse_mmd2";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const auto& o = options_of(options, op);
    dispatch_float(X, op, "X", [&](auto zero) {
      using T = decltype(zero);
      const kfuse_dtype_t dt = X->dtype;
      kfuse::mmd2(c, matrix<const T>(X, dt, op, "X"), matrix<const T>(Y, dt, op, "Y"),
                  vector<T>(out, dt, op, "out"),
                  kfuse::Mmd2Options{o.sigma, o.unbiased != 0, precision_of(o.precision)});
    });
  });
}

}  // extern "C"
