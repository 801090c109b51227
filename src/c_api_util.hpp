// Shared pieces of the C API: exception-to-status translation, C descriptors to
// views, dtype dispatch. One translation unit per op family uses them.
#pragma once

#include <new>
#include <string>
#include <utility>

#include "kfuse/kfuse.h"
#include "kfuse/kfuse.hpp"

struct kfuse_context_s {
  kfuse::Context ctx;
};

namespace kfuse::c_api {

// The calling thread's last error message (kfuse_last_error()).
std::string& last_error();

template <class F>
inline kfuse_status_t guarded(F&& body) noexcept {
  try {
    body();
    return KFUSE_SUCCESS;
  } catch (const kfuse::Error& e) {
    last_error() = e.what();
    return static_cast<kfuse_status_t>(e.status());
  } catch (const std::bad_alloc&) {
    last_error() = "out of host memory";
    return KFUSE_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    last_error() = std::string("internal error: ") + e.what();
    return KFUSE_INTERNAL;
  } catch (...) {
    last_error() = "internal error: unknown exception";
    return KFUSE_INTERNAL;
  }
}

[[noreturn]] inline void fail(kfuse::Status status, const char* op, const char* argument,
                              const std::string& what) {
  throw kfuse::Error(status, std::string(op) + ": argument '" + argument + "': " + what);
}

inline kfuse::Context& context_of(kfuse_context_t ctx, const char* op) {
  if (ctx == nullptr) fail(kfuse::Status::InvalidArgument, op, "ctx", "is null");
  return ctx->ctx;
}

inline kfuse::Memory memory_of(kfuse_memory_t m, const char* op, const char* argument) {
  if (m != KFUSE_HOST && m != KFUSE_DEVICE)
    fail(kfuse::Status::InvalidArgument, op, argument,
         "unknown memory location " + std::to_string(static_cast<int>(m)));
  return static_cast<kfuse::Memory>(m);
}

inline void expect_dtype(kfuse_dtype_t actual, kfuse_dtype_t expected, const char* op,
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
kfuse::VectorView<T> optional_vector(const kfuse_vector_t* v, kfuse_dtype_t dtype, const char* op,
                                     const char* argument) {
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

inline kfuse::Precision precision_of(kfuse_precision_t p) {
  return static_cast<kfuse::Precision>(p);
}

// The common shape of an entry point whose element type follows its first matrix
// (f32 or f64): checks ctx and options, then calls body(context, options, T{}, dtype).
template <class Options, class Body>
kfuse_status_t float_call(const char* op, kfuse_context_t ctx, const Options* options,
                          const kfuse_matrix_t* first, const char* first_name,
                          Body&& body) noexcept {
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const Options& o = options_of(options, op);
    dispatch_float(first, op, first_name, [&](auto zero) { body(c, o, zero, first->dtype); });
  });
}

}  // namespace kfuse::c_api
