// Shared pieces of the C API: exception-to-status translation, C descriptors to
// views, dtype dispatch. One translation unit per op family uses them.
#pragma once

#include <cstring>
#include <new>
#include <string>
#include <type_traits>
#include <utility>

#include "kfuse/kfuse.h"
#include "kfuse/kfuse.hpp"
#include "src/core/dtype_dispatch.hpp"
#include "src/core/validate.hpp"

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
  kfuse::detail::argument_error(status, op, argument, what);
}

inline kfuse::Context& context_of(kfuse_context_t ctx, const char* op) {
  if (ctx == nullptr) fail(kfuse::Status::InvalidArgument, op, "ctx", "is null");
  return ctx->ctx;
}

// ------------------------------------------------------------------ enumerations
// A C caller (C, ctypes, cffi) may store any int in an enumeration-typed field or
// argument. Loading a value outside the enumerators as a C++ unscoped enum is
// undefined behaviour (UBSan: "load of value 7, which is not a valid value for
// type 'kfuse_dtype'"), so the C API never loads one: it reads the integer's bytes
// (enum_integer), checks the range, and only then converts (enum_of).

// The int a caller stored in a C enumeration, read without loading the enum type.
template <class E>
int enum_integer(const E& value) noexcept {
  static_assert(std::is_enum_v<E> && sizeof(E) == sizeof(int), "a C enumeration is int-sized");
  int v;
  std::memcpy(&v, &value, sizeof v);
  return v;
}

// The integers 0 .. count - 1 a C enumeration accepts (the numeric values kfuse.h
// shares with the C++ enumeration To, checked below), and their names for messages.
template <class To>
struct c_enum;

#define KFUSE_C_ENUM(To, last_c, last_cpp, kind, names)                 \
  template <>                                                           \
  struct c_enum<To> {                                                   \
    static constexpr int count = static_cast<int>(last_c) + 1;          \
    static constexpr const char* what = kind;                           \
    static constexpr const char* expected = names;                      \
  };                                                                    \
  static_assert(static_cast<int>(last_c) == static_cast<int>(last_cpp), \
                "kfuse.h and the C++ headers must number " kind " values alike")

KFUSE_C_ENUM(kfuse::DType, KFUSE_I64, kfuse::DType::I64, "dtype",
             "KFUSE_F32, KFUSE_F64, KFUSE_BF16, KFUSE_F16, KFUSE_I32 or KFUSE_I64");
KFUSE_C_ENUM(kfuse::Memory, KFUSE_DEVICE, kfuse::Memory::Device, "memory location",
             "KFUSE_HOST or KFUSE_DEVICE");
KFUSE_C_ENUM(kfuse::Precision, KFUSE_PRECISION_BF16, kfuse::Precision::BF16, "precision",
             "KFUSE_PRECISION_EXACT, KFUSE_PRECISION_TF32 or KFUSE_PRECISION_BF16");
KFUSE_C_ENUM(kfuse::SideKernel, KFUSE_SIDE_RBF, kfuse::SideKernel::Rbf, "side kernel",
             "KFUSE_SIDE_LINEAR, KFUSE_SIDE_COSINE or KFUSE_SIDE_RBF");
KFUSE_C_ENUM(kfuse::RpDistribution, KFUSE_RP_RADEMACHER, kfuse::RpDistribution::Rademacher,
             "distribution", "KFUSE_RP_UNIFORM, KFUSE_RP_GAUSSIAN or KFUSE_RP_RADEMACHER");
KFUSE_C_ENUM(kfuse::RpScaling, KFUSE_RP_AUTHORS_COMPAT, kfuse::RpScaling::AuthorsCompat, "scaling",
             "KFUSE_RP_UNBIASED or KFUSE_RP_AUTHORS_COMPAT");
KFUSE_C_ENUM(kfuse::Modality, KFUSE_MODALITY_TEXT, kfuse::Modality::Text, "modality",
             "KFUSE_MODALITY_IMAGE or KFUSE_MODALITY_TEXT");
KFUSE_C_ENUM(kfuse::RouterMode, KFUSE_ROUTER_TOPK_SOFTMAX, kfuse::RouterMode::TopKSoftmax,
             "router mode", "KFUSE_ROUTER_SOFTMAX_TOPK or KFUSE_ROUTER_TOPK_SOFTMAX");
KFUSE_C_ENUM(kfuse::ClipDirection, KFUSE_CLIP_B_TO_A, kfuse::ClipDirection::BtoA, "direction",
             "KFUSE_CLIP_BOTH, KFUSE_CLIP_A_TO_B or KFUSE_CLIP_B_TO_A");
KFUSE_C_ENUM(kfuse::ContrastivePass, KFUSE_PASS_FORWARD_BACKWARD,
             kfuse::ContrastivePass::ForwardBackward, "pass",
             "KFUSE_PASS_FORWARD, KFUSE_PASS_BACKWARD or KFUSE_PASS_FORWARD_BACKWARD");
#undef KFUSE_C_ENUM

// The C++ enumeration To for the C enumeration value `value`, or InvalidArgument
// naming `argument` when the caller stored an integer outside the enumerators.
template <class To, class From>
To enum_of(const From& value, const char* op, const char* argument) {
  const int v = enum_integer(value);
  if (v < 0 || v >= c_enum<To>::count)
    fail(kfuse::Status::InvalidArgument, op, argument,
         std::string("unknown ") + c_enum<To>::what + " " + std::to_string(v) + " (expected " +
             c_enum<To>::expected + ")");
  return static_cast<To>(v);
}

inline kfuse::Memory memory_of(const kfuse_memory_t& m, const char* op, const char* argument) {
  return enum_of<kfuse::Memory>(m, op, argument);
}

// The dtype a descriptor holds, checked.
inline kfuse::DType checked_dtype(const kfuse_dtype_t& d, const char* op, const char* argument) {
  return enum_of<kfuse::DType>(d, op, argument);
}

inline kfuse::Precision precision_of(const kfuse_precision_t& p, const char* op) {
  return enum_of<kfuse::Precision>(p, op, "precision");
}

// `actual` must be `expected` (a constant, or a dtype already checked). The message
// names only the dtype: `expected` may be fixed (an f32 output) or follow an input.
inline void expect_dtype(const kfuse_dtype_t& actual, kfuse_dtype_t expected, const char* op,
                         const char* argument) {
  const kfuse::DType a = checked_dtype(actual, op, argument);
  if (a != static_cast<kfuse::DType>(expected))
    fail(kfuse::Status::InvalidArgument, op, argument,
         std::string("expected dtype ") + kfuse::dtype_name(static_cast<kfuse::DType>(expected)) +
             ", got " + kfuse::dtype_name(a));
}

template <class T>
kfuse::MatrixView<T> matrix(const kfuse_matrix_t* m, kfuse_dtype_t dtype, const char* op,
                            const char* argument) {
  if (m == nullptr) fail(kfuse::Status::InvalidArgument, op, argument, "is null");
  expect_dtype(m->dtype, dtype, op, argument);
  return {static_cast<T*>(m->data), m->rows, m->cols, m->ld, memory_of(m->memory, op, argument)};
}

// An optional matrix: NULL gives an empty view (a descriptor is checked by the C++
// function even when its data is NULL).
template <class T>
kfuse::MatrixView<T> optional_matrix(const kfuse_matrix_t* m, kfuse_dtype_t dtype, const char* op,
                                     const char* argument) {
  if (m == nullptr) return {};
  return matrix<T>(m, dtype, op, argument);
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

// Calls body(T{}) with T the element type, among Ts, that `first`'s dtype names. A null
// descriptor or an unknown dtype is InvalidArgument, a dtype the op does not take Unsupported.
template <class... Ts, class Body>
void dispatch_matrix(const kfuse_matrix_t* first, const char* op, const char* argument,
                     Body&& body) {
  if (first == nullptr) fail(kfuse::Status::InvalidArgument, op, argument, "is null");
  const kfuse::DType dtype = checked_dtype(first->dtype, op, argument);
  if (!kfuse::detail::visit_dtype<Ts...>(dtype, body))
    fail(kfuse::Status::Unsupported, op, argument,
         "expected dtype " + kfuse::detail::dtype_names<Ts...>() + ", got " +
             kfuse::dtype_name(dtype));
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
    dispatch_matrix<float, double>(first, op, first_name,
                                   [&](auto zero) { body(c, o, zero, first->dtype); });
  });
}

}  // namespace kfuse::c_api
