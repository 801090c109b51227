// DLPack arrays (nanobind ndarrays) to kfuse views, and the context a call runs on.
//
// The binding takes every array, outputs included, from its caller (the Python layer
// allocates outputs with the caller's framework, on the caller's device). Each array
// becomes a view without a copy: a 2-D array whose inner stride is one element is a
// MatrixView with ld = its row stride; anything else (a transposed or sliced inner
// dimension, negative or overlapping row strides) is a ValueError naming the
// argument, and a dtype the op does not take is a TypeError.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>

#include <kfuse/kfuse.hpp>

#include "src/core/dtype_dispatch.hpp"

namespace kfuse_py {

namespace nb = nanobind;

using In = nb::ndarray<nb::ro>;  // an input: read-only arrays are accepted
using Out = nb::ndarray<>;       // an output: written in place
using OptIn = std::optional<In>;
using OptOut = std::optional<Out>;

// The DLPack dtype of an array as a kfuse DType; TypeError for any other dtype.
kfuse::DType dtype_of(const nb::dlpack::dtype& t, const char* op, const char* name);
const char* dtype_label(kfuse::DType dtype);

// Where a call runs: the arrays' device, checked to be one, and its context. A Cuda
// context borrows `stream` (0: the legacy default stream) and, with torch_workspace,
// takes workspace from PyTorch's caching allocator (see module.cpp).
class Call {
 public:
  Call(const char* op, std::uintptr_t stream, bool torch_workspace)
      : op_(op), stream_(stream), torch_workspace_(torch_workspace) {}

  template <class T, class A>
  kfuse::MatrixView<T> matrix(const A& a, const char* name) {
    check_dtype<T>(a, name);
    if (a.ndim() != 2) fail_ndim(name, a.ndim(), 2);
    const auto memory = locate(a, name);
    const std::int64_t rows = std::int64_t(a.shape(0)), cols = std::int64_t(a.shape(1));
    const std::int64_t s0 = a.stride(0), s1 = a.stride(1);
    std::int64_t ld = cols;
    if (rows == 0 || cols == 0)  // nothing is read or written: strides are arbitrary
      return {static_cast<T*>(const_cast<void*>(static_cast<const void*>(a.data()))), rows, cols,
              ld, memory};
    if (cols > 1 && s1 != 1) fail_inner(name, s1);
    if (rows > 1) {
      if (s0 < cols)
        throw nb::value_error((prefix(name) + "row stride " + std::to_string(s0) +
                               " elements is below its " + std::to_string(cols) +
                               " columns (negative or overlapping rows cannot be a view)")
                                  .c_str());
      ld = s0;
    }
    return {static_cast<T*>(const_cast<void*>(static_cast<const void*>(a.data()))), rows, cols, ld,
            memory};
  }

  template <class T, class A>
  kfuse::VectorView<T> vector(const A& a, const char* name) {
    check_dtype<T>(a, name);
    if (a.ndim() > 1) fail_ndim(name, a.ndim(), 1);
    const auto memory = locate(a, name);
    const std::int64_t n = a.ndim() == 0 ? 1 : std::int64_t(a.shape(0));
    if (a.ndim() == 1 && n > 1 && a.stride(0) != 1) fail_inner(name, a.stride(0));  // n = 0: any
    return {static_cast<T*>(const_cast<void*>(static_cast<const void*>(a.data()))), n, memory};
  }

  template <class T, class A>
  kfuse::VectorView<T> vector(const std::optional<A>& a, const char* name) {
    return a ? vector<T>(*a, name) : kfuse::VectorView<T>{};
  }
  template <class T, class A>
  kfuse::MatrixView<T> matrix(const std::optional<A>& a, const char* name) {
    return a ? matrix<T>(*a, name) : kfuse::MatrixView<T>{};
  }

  // The context for the arrays seen so far (CPU when none was on a CUDA device).
  kfuse::Context& context();

  std::string prefix(const char* name) const {
    return std::string(op_) + ": argument '" + name + "' ";
  }
  const char* op() const { return op_; }

 private:
  template <class T, class A>
  void check_dtype(const A& a, const char* name) {
    const kfuse::DType want = kfuse::dtype_of<T>::value;
    const kfuse::DType got = dtype_of(a.dtype(), op_, name);
    if (got != want)
      throw nb::type_error(
          (prefix(name) + "has dtype " + dtype_label(got) + ", expected " + dtype_label(want))
              .c_str());
  }
  template <class A>
  kfuse::Memory locate(const A& a, const char* name) {
    return locate(a.device_type(), a.device_id(), name);
  }
  kfuse::Memory locate(int device_type, int device_id, const char* name);
  [[noreturn]] void fail_ndim(const char* name, std::size_t got, int want) const;
  [[noreturn]] void fail_inner(const char* name, std::int64_t stride) const;

  const char* op_;
  std::uintptr_t stream_;
  bool torch_workspace_;
  bool seen_ = false;
  kfuse::Memory memory_ = kfuse::Memory::Host;
  int device_ = -1;
  const char* first_ = nullptr;
};

// The dtype of an array (for dispatch), TypeError naming the argument when unsupported.
template <class A>
kfuse::DType dtype(const A& a, const char* op, const char* name) {
  return dtype_of(a.dtype(), op, name);
}

[[noreturn]] void unsupported_dtype(const char* op, const char* name, kfuse::DType got,
                                    const char* accepted);

// Runs f(T{}) for T, among Ts, the element type named by `dtype`; a TypeError naming the
// accepted dtypes otherwise (the library's one dispatch, src/core/dtype_dispatch.hpp).
template <class... Ts, class F>
void dispatch_dtype(kfuse::DType dtype, const char* op, const char* name, F&& f) {
  if (!kfuse::detail::visit_dtype<Ts...>(dtype, f))
    unsupported_dtype(op, name, dtype, kfuse::detail::dtype_names<Ts...>(dtype_label).c_str());
}

// The output element type of a fusion op for input type T: double for double, else float.
template <class T>
using FuseOut = std::conditional_t<std::is_same_v<T, double>, double, float>;

// The module's dict of each op's option defaults, as the C++ option structs have them
// (the Python wrappers' keyword defaults are tested against it).
nb::dict defaults(nb::module_& m, const char* op);

// Registers the exception translator (kfuse::Error -> ValueError, RuntimeError, ...)
// and the workspace-allocator hook.
void register_common(nb::module_& m);

void register_gauss(nb::module_& m);
void register_fuse(nb::module_& m);
void register_contrastive(nb::module_& m);
void register_moe(nb::module_& m);

}  // namespace kfuse_py
