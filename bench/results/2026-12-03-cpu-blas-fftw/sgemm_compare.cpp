// hand-written cpu::gemm (double accumulation) vs cblas_sgemm, several shapes
#include <cblas.h>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>
#include "gemm.hpp"
using namespace std::chrono;
template <class F>
double best_ms(F f, int reps) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t0 = steady_clock::now();
    f();
    best = std::min(best, duration<double, std::milli>(steady_clock::now() - t0).count());
  }
  return best;
}
int main(int argc, char** argv) {
  bool hand = argc > 1 && argv[1][0] == 'h';
  struct S {
    long m, n, k;
  } shapes[] = {{512, 512, 512}, {256, 1024, 512}, {1024, 1024, 1024}, {128, 256, 512}};
  for (auto s : shapes) {
    std::vector<float> A(s.m * s.k), B(s.k * s.n), C(s.m * s.n);
    std::mt19937 g(1);
    std::uniform_real_distribution<float> u(-1, 1);
    for (auto& x : A)
      x = u(g);
    for (auto& x : B)
      x = u(g);
    double ms;
    if (hand)
      ms = best_ms(
          [&] {
            kfuse::cpu::gemm<float>(kfuse::cpu::Trans::No, kfuse::cpu::Trans::No, s.m, s.n, s.k,
                                    1.0, A.data(), s.k, B.data(), s.n, 0.0, C.data(), s.n);
          },
          5);
    else
      ms = best_ms(
          [&] {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s.m, s.n, s.k, 1.f, A.data(),
                        s.k, B.data(), s.n, 0.f, C.data(), s.n);
          },
          10);
    std::printf("%5ld x %5ld x %5ld  %8.3f ms  %7.1f GFLOP/s\n", s.m, s.n, s.k, ms,
                2.0 * s.m * s.n * s.k / ms * 1e-6);
  }
}
