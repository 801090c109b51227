// Links against the installed libkfuse_cuda and runs one op on the best backend.
#include <kfuse/kfuse.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
  kfuse::Context ctx = kfuse::Context::cpu();
  // Two points at distance 1 with sigma 1: K = [[1, e^-1/2], [e^-1/2, 1]].
  std::vector<double> x = {0.0, 1.0}, v = {1.0, 1.0}, out(2, NAN);
  kfuse::GaussMatvecOptions o;
  kfuse::gauss_matvec(ctx, kfuse::host_matrix<const double>(x.data(), 2, 1),
                      kfuse::host_matrix<const double>(x.data(), 2, 1),
                      kfuse::host_matrix<const double>(v.data(), 2, 1),
                      kfuse::host_matrix(out.data(), 2, 1), o);
  const double want = 1.0 + std::exp(-0.5);
  std::printf("kfuse %s (cuda: %d): out = [%.15f, %.15f], want %.15f\n", KFUSE_VERSION_STRING,
              kfuse::built_with_cuda() ? 1 : 0, out[0], out[1], want);
  return std::fabs(out[0] - want) < 1e-14 && std::fabs(out[1] - want) < 1e-14 ? 0 : 1;
}
