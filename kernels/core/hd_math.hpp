// Overloads that pick the float or the double libm function, on host and device
// alike, for code templated on its working type.
#pragma once

#include <cmath>

#include "kernels/core/hd.hpp"

namespace kfuse::detail {

KFUSE_HD float hd_log2(float x) {
  return log2f(x);
}
KFUSE_HD double hd_log2(double x) {
  return log2(x);
}
KFUSE_HD float hd_exp2(float x) {
  return exp2f(x);
}
KFUSE_HD double hd_exp2(double x) {
  return exp2(x);
}
KFUSE_HD float hd_exp(float x) {
  return expf(x);
}
KFUSE_HD double hd_exp(double x) {
  return exp(x);
}
KFUSE_HD float hd_log(float x) {
  return logf(x);
}
KFUSE_HD double hd_log(double x) {
  return log(x);
}
KFUSE_HD float hd_log1p(float x) {
  return log1pf(x);
}
KFUSE_HD double hd_log1p(double x) {
  return log1p(x);
}
KFUSE_HD float hd_frexp(float x, int* e) {
  return frexpf(x, e);
}
KFUSE_HD double hd_frexp(double x, int* e) {
  return frexp(x, e);
}
KFUSE_HD float hd_ldexp(float x, int e) {
  return ldexpf(x, e);
}
KFUSE_HD double hd_ldexp(double x, int e) {
  return ldexp(x, e);
}

}  // namespace kfuse::detail
