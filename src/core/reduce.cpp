#include "src/core/reduce.hpp"

#include "kernels/core/reduce_launch.hpp"
#include "src/core/backend.hpp"

namespace kfuse::detail {
namespace {

template <class T>
void cpu_sum_to_f64(const T* x, std::int64_t n, std::int64_t stride, double* out) {
  double total = 0.0;
  for (std::int64_t k = 0; k < n; ++k)
    total += static_cast<double>(x[k * stride]);
  *out = total;
}

template <class T>
void cpu_combine_f64(const double* terms, const double* coeff, int count, T* out) {
  double total = 0.0;
  for (int k = 0; k < count; ++k)
    total += coeff[k] * terms[k];
  out[0] = static_cast<T>(total);
}

}  // namespace

template <class T>
void sum_to_f64(Context& ctx, const T* x, std::int64_t n, std::int64_t stride, double* out) {
  return KFUSE_DISPATCH(ctx, cuda::sum_to_f64(ctx, x, n, stride, out),
                        cpu_sum_to_f64(x, n, stride, out));
}

template <class T>
void combine_f64(Context& ctx, const double* terms, const double* coeff, int count, T* out) {
  return KFUSE_DISPATCH(ctx, cuda::combine_f64(ctx, terms, coeff, count, out),
                        cpu_combine_f64(terms, coeff, count, out));
}

template void sum_to_f64<float>(Context&, const float*, std::int64_t, std::int64_t, double*);
template void sum_to_f64<double>(Context&, const double*, std::int64_t, std::int64_t, double*);
template void combine_f64<float>(Context&, const double*, const double*, int, float*);
template void combine_f64<double>(Context&, const double*, const double*, int, double*);

}  // namespace kfuse::detail
