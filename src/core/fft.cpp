#include "src/core/fft.hpp"

#include <fftw3.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>

namespace kfuse::cpu {

void FftwFree::operator()(void* p) const {
  fftwf_free(p);
}

namespace {

// FFTW's single-precision interface behind one name (RealFft is a template so that
// another precision is one more specialisation).
template <class T>
struct Fftw;
template <>
struct Fftw<float> {
  using plan = fftwf_plan;
  using complex = fftwf_complex;
  static plan r2c(int n, float* x, complex* X, unsigned flags) {
    return fftwf_plan_dft_r2c_1d(n, x, X, flags);
  }
  static plan c2r(int n, complex* X, float* x, unsigned flags) {
    return fftwf_plan_dft_c2r_1d(n, X, x, flags);
  }
  static void execute_r2c(plan p, float* x, complex* X) { fftwf_execute_dft_r2c(p, x, X); }
  static void execute_c2r(plan p, complex* X, float* x) { fftwf_execute_dft_c2r(p, X, x); }
  static void destroy(plan p) { fftwf_destroy_plan(p); }
};

// FFTW's planner is one per process and not thread-safe (its executors are).
std::mutex& planner_lock() {
  static std::mutex m;
  return m;
}

}  // namespace

std::string fft_description() {
  return fftwf_version;
}

template <class T>
FftBuffer<T> fft_buffer(std::int64_t count) {
  void* p = fftwf_malloc(sizeof(T) * static_cast<std::size_t>(count > 0 ? count : 1));
  if (p == nullptr) throw std::bad_alloc();
  return FftBuffer<T>(static_cast<T*>(p));
}
template FftBuffer<float> fft_buffer<float>(std::int64_t);
template FftBuffer<std::complex<float>> fft_buffer<std::complex<float>>(std::int64_t);

template <class T>
RealFft<T>::RealFft(std::int64_t n) : n_(n) {
  if (n < 1 || n > INT32_MAX) throw std::invalid_argument("RealFft: length out of range");
  // Plans are made on scratch arrays of the alignment fftwf_malloc gives, so that
  // the new-array executors accept every fft_buffer.
  FftBuffer<T> x = fft_buffer<T>(n);
  FftBuffer<std::complex<T>> X = fft_buffer<std::complex<T>>(n / 2 + 1);
  auto* Xf = reinterpret_cast<typename Fftw<T>::complex*>(X.get());
  // FFTW_DESTROY_INPUT is c2r's default; r2c keeps its input (FFTW_PRESERVE_INPUT).
  forward_ = Fftw<T>::r2c(static_cast<int>(n), x.get(), Xf, FFTW_ESTIMATE | FFTW_PRESERVE_INPUT);
  inverse_ = Fftw<T>::c2r(static_cast<int>(n), Xf, x.get(), FFTW_ESTIMATE | FFTW_DESTROY_INPUT);
  if (forward_ == nullptr || inverse_ == nullptr) throw std::bad_alloc();
}

template <class T>
RealFft<T>::~RealFft() {
  const std::lock_guard<std::mutex> lock(planner_lock());
  if (forward_ != nullptr) Fftw<T>::destroy(static_cast<typename Fftw<T>::plan>(forward_));
  if (inverse_ != nullptr) Fftw<T>::destroy(static_cast<typename Fftw<T>::plan>(inverse_));
}

template <class T>
const RealFft<T>& RealFft<T>::of_size(std::int64_t n) {
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

template <class T>
void RealFft<T>::forward(const T* x, std::complex<T>* X) const {
  // The r2c plan preserves its input: the cast only meets FFTW's signature.
  Fftw<T>::execute_r2c(static_cast<typename Fftw<T>::plan>(forward_), const_cast<T*>(x),
                       reinterpret_cast<typename Fftw<T>::complex*>(X));
}

template <class T>
void RealFft<T>::inverse(std::complex<T>* X, T* x) const {
  Fftw<T>::execute_c2r(static_cast<typename Fftw<T>::plan>(inverse_),
                       reinterpret_cast<typename Fftw<T>::complex*>(X), x);
}

template class RealFft<float>;

}  // namespace kfuse::cpu
