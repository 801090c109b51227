// A radix-2 complex FFT in double for the CPU paths (internal), run on kFftLanes
// independent signals at once: the real part of element t of signal q is at
// [(2t) * kFftLanes + q], its imaginary part at [(2t + 1) * kFftLanes + q], so every
// butterfly is one vector operation across the signals, an element of all signals
// is one 64-byte cache line, and the code stays the textbook iterative algorithm.
// TensorSketch's CPU path convolves its count sketches with it, four rows at a time.
#pragma once

#include <cstdint>
#include <vector>

namespace kfuse::cpu {

constexpr int kFftLanes = 4;

class FftPlan {
 public:
  // size: a power of two >= 1.
  explicit FftPlan(std::int64_t size);
  std::int64_t size() const { return size_; }
  // In place on data ([size][2][kFftLanes]): X_k = sum_t x_t e^(-+2 pi i t k / size),
  // the minus sign forward; the inverse is not scaled by 1 / size.
  void transform(double* data, bool inverse) const;

 private:
  std::int64_t size_;
  std::vector<std::int64_t> reversed_;  // bit-reversed index of each t
  std::vector<double> cos_, sin_;       // e^(-2 pi i j / size) for j < size / 2
};

// The smallest power of two >= n (n >= 1).
std::int64_t fft_size_at_least(std::int64_t n);

}  // namespace kfuse::cpu
