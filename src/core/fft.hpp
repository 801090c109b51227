// Real FFTs for the CPU paths (internal), through FFTW 3 in single precision:
// transforms of any length n at that length (no padding to a power of two),
// real-to-complex and back. FFTW chooses its SIMD codelets (SSE2, AVX, AVX2, AVX-512
// where built) for the processor at run time. TensorSketch's CPU path convolves its
// count sketches with RealFft<float>, one row at a time, as the GPU path does with
// cuFFT in fp32.
//
// Plans are made once per length and kept for the life of the process (FFTW's
// planner is not thread-safe: making one takes a lock; executing a plan is safe from
// any number of threads). They are made with FFTW_ESTIMATE, a fixed choice of
// algorithm for a length, so a length's results are the same bits in every run
// (FFTW_MEASURE would pick by timing, and the bits could differ run to run).
#pragma once

#include <complex>
#include <cstdint>
#include <memory>
#include <string>

namespace kfuse::cpu {

// A buffer from fftwf_malloc: the alignment the plans were made for.
struct FftwFree {
  void operator()(void* p) const;
};
template <class T>
using FftBuffer = std::unique_ptr<T[], FftwFree>;
// count values of T (float or std::complex<float>).
template <class T>
FftBuffer<T> fft_buffer(std::int64_t count);

// FFTW's version and the SIMD codelets it was built with, e.g. "fftw-3.3.10-sse2-avx".
std::string fft_description();

// T: float (the one precision the CPU paths use).
template <class T>
class RealFft {
 public:
  // The plans for length n >= 1, made on first use (thread-safe), then shared.
  static const RealFft& of_size(std::int64_t n);

  std::int64_t size() const { return n_; }
  // Entries of a half spectrum: n / 2 + 1.
  std::int64_t spectrum_size() const { return n_ / 2 + 1; }

  // X_k = sum_t x_t e^(-2 pi i t k / n), k <= n / 2; x (n values) is not changed.
  // x and X: fft_buffer memory, not overlapping.
  void forward(const T* x, std::complex<T>* X) const;
  // x_t = sum_k X_k e^(+2 pi i t k / n) over the whole Hermitian spectrum (not scaled
  // by 1 / n); X (n / 2 + 1 values) is overwritten.
  void inverse(std::complex<T>* X, T* x) const;

  RealFft(const RealFft&) = delete;
  RealFft& operator=(const RealFft&) = delete;
  ~RealFft();

 private:
  explicit RealFft(std::int64_t n);
  std::int64_t n_;
  void* forward_ = nullptr;  // fftwf_plan
  void* inverse_ = nullptr;
};

extern template class RealFft<float>;

}  // namespace kfuse::cpu
