// The one dtype dispatch: from a run-time DType to a template instantiation over the
// element types an op takes. The C API (src/core/c_api_util.hpp) and the Python binding
// (python/src/arrays.hpp) both use it; each words its own error from dtype_names.
// Depends on the public headers only, so that the binding may include it.
#pragma once

#include <string>

#include "kfuse/view.hpp"

namespace kfuse::detail {

// Calls body(T{}) for the T among Ts whose dtype_of is `dtype`. False, calling nothing,
// when no T is: the caller reports the dtype, naming the accepted ones with dtype_names.
template <class... Ts, class Body>
bool visit_dtype(DType dtype, Body&& body) {
  return ((dtype == dtype_of<Ts>::value ? (body(Ts{}), true) : false) || ...);
}

// "f32", "f32 or bf16", "f32, bf16 or f16": Ts's dtypes as `name` spells them.
template <class... Ts>
std::string dtype_names(const char* (*name)(DType) = dtype_name) {
  const char* names[] = {name(dtype_of<Ts>::value)...};
  constexpr std::size_t count = sizeof...(Ts);
  std::string out;
  for (std::size_t i = 0; i < count; ++i) {
    if (i > 0) out += i + 1 == count ? " or " : ", ";
    out += names[i];
  }
  return out;
}

}  // namespace kfuse::detail
