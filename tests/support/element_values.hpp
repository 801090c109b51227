// One vocabulary for element values in the tests: any element type to double and
// back (bf16/fp16 decoded and rounded to nearest even by kernels/core/float16.hpp,
// itself tested in test_float16), a NaN of the type, and a NaN test.
#pragma once

#include <cmath>
#include <limits>

#include "kernels/core/float16.hpp"
#include "kfuse/view.hpp"

namespace kfuse::test {

inline double as_double(float v) {
  return v;
}
inline double as_double(double v) {
  return v;
}
inline double as_double(bf16 v) {
  return detail::to_float(v);
}
inline double as_double(f16 v) {
  return detail::to_float(v);
}

template <class T>
T from_double(double v) {
  if constexpr (std::is_same_v<T, double>)
    return v;
  else
    return detail::from_float<T>(static_cast<float>(v));
}

template <class T>
T nan_of() {
  return from_double<T>(std::numeric_limits<double>::quiet_NaN());
}

template <class T>
bool is_nan(T v) {
  return std::isnan(as_double(v));
}

}  // namespace kfuse::test
