#include "src/core/fft.hpp"

#include <fftw3.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <new>
#include <stdexcept>

namespace kfuse::cpu {

void FftwFree::operator()(void* p) const {
  fftw_free(p);
}

namespace {

template <class T>
FftBuffer<T> fftw_buffer(std::int64_t count) {
  void* p = fftw_malloc(sizeof(T) * static_cast<std::size_t>(count > 0 ? count : 1));
  if (p == nullptr) throw std::bad_alloc();
  return FftBuffer<T>(static_cast<T*>(p));
}

// FFTW's planner is one per process and not thread-safe (its executors are).
std::mutex& planner_lock() {
  static std::mutex m;
  return m;
}

}  // namespace

std::string fft_description() {
  return fftw_version;
}

FftBuffer<double> fft_real_buffer(std::int64_t count) {
  return fftw_buffer<double>(count);
}
FftBuffer<std::complex<double>> fft_complex_buffer(std::int64_t count) {
  return fftw_buffer<std::complex<double>>(count);
}

RealFft::RealFft(std::int64_t n) : n_(n) {
  if (n < 1 || n > INT32_MAX) throw std::invalid_argument("RealFft: length out of range");
  // Plans are made on scratch arrays of the alignment fftw_malloc gives, so that
  // the new-array executors accept every fft_*_buffer.
  FftBuffer<double> x = fft_real_buffer(n);
  FftBuffer<std::complex<double>> X = fft_complex_buffer(n / 2 + 1);
  auto* Xf = reinterpret_cast<fftw_complex*>(X.get());
  // FFTW_DESTROY_INPUT is c2r's default; r2c keeps its input (FFTW_PRESERVE_INPUT).
  forward_ =
      fftw_plan_dft_r2c_1d(static_cast<int>(n), x.get(), Xf, FFTW_ESTIMATE | FFTW_PRESERVE_INPUT);
  inverse_ =
      fftw_plan_dft_c2r_1d(static_cast<int>(n), Xf, x.get(), FFTW_ESTIMATE | FFTW_DESTROY_INPUT);
  if (forward_ == nullptr || inverse_ == nullptr) throw std::bad_alloc();
}

RealFft::~RealFft() {
  const std::lock_guard<std::mutex> lock(planner_lock());
  if (forward_ != nullptr) fftw_destroy_plan(static_cast<fftw_plan>(forward_));
  if (inverse_ != nullptr) fftw_destroy_plan(static_cast<fftw_plan>(inverse_));
}

const RealFft& RealFft::of_size(std::int64_t n) {
  // Kept for the life of the process: a cache entry is never removed, so the
  // reference stays valid while other threads add lengths. (The lock is made first,
  // so that it outlives the cache, whose plans take it when destroyed at exit.)
  std::mutex& m = planner_lock();
  static std::map<std::int64_t, std::unique_ptr<RealFft>> plans;
  const std::lock_guard<std::mutex> lock(m);
  std::unique_ptr<RealFft>& plan = plans[n];
  if (!plan) plan.reset(new RealFft(n));
  return *plan;
}

void RealFft::forward(const double* x, std::complex<double>* X) const {
  // The r2c plan preserves its input: the cast only meets FFTW's signature.
  fftw_execute_dft_r2c(static_cast<fftw_plan>(forward_), const_cast<double*>(x),
                       reinterpret_cast<fftw_complex*>(X));
}

void RealFft::inverse(std::complex<double>* X, double* x) const {
  fftw_execute_dft_c2r(static_cast<fftw_plan>(inverse_), reinterpret_cast<fftw_complex*>(X), x);
}

}  // namespace kfuse::cpu
