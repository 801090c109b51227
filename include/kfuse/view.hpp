// Non-owning views of row-major matrices and contiguous vectors.
//
// A view records where its memory lives (Host or Device); every operation checks
// that location against its Context before touching the data.
#pragma once

#include <cstdint>
#include <type_traits>

namespace kfuse {

enum class Memory : int { Host = 0, Device = 1 };

// Element types. bf16 and f16 are storage types: 16 bits, no arithmetic here
// (kernels convert them; the CPU path converts through float).
struct bf16 {
  std::uint16_t bits;
};
struct f16 {
  std::uint16_t bits;
};

// Numeric values are part of the C ABI (kfuse.h mirrors them).
enum class DType : int { F32 = 0, F64 = 1, BF16 = 2, F16 = 3, I32 = 4, I64 = 5 };

template <class T>
struct dtype_of;
template <>
struct dtype_of<float> : std::integral_constant<DType, DType::F32> {};
template <>
struct dtype_of<double> : std::integral_constant<DType, DType::F64> {};
template <>
struct dtype_of<bf16> : std::integral_constant<DType, DType::BF16> {};
template <>
struct dtype_of<f16> : std::integral_constant<DType, DType::F16> {};
template <>
struct dtype_of<std::int32_t> : std::integral_constant<DType, DType::I32> {};
template <>
struct dtype_of<std::int64_t> : std::integral_constant<DType, DType::I64> {};
template <class T>
struct dtype_of<const T> : dtype_of<T> {};

const char* dtype_name(DType dtype) noexcept;
const char* memory_name(Memory memory) noexcept;

// Row-major matrix: element (i, j) is data[i * ld + j]; ld >= cols.
// Extents are 64-bit so that rows * ld never overflows.
template <class T>
struct MatrixView {
  T* data = nullptr;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::int64_t ld = 0;
  Memory memory = Memory::Host;

  constexpr MatrixView() = default;
  constexpr MatrixView(T* data_, std::int64_t rows_, std::int64_t cols_, std::int64_t ld_,
                       Memory memory_)
      : data(data_), rows(rows_), cols(cols_), ld(ld_), memory(memory_) {}

  // A mutable view converts to a read-only one.
  template <class U, class = std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>>>
  constexpr MatrixView(const MatrixView<U>& other)  // NOLINT(google-explicit-constructor)
      : data(other.data), rows(other.rows), cols(other.cols), ld(other.ld), memory(other.memory) {}

  constexpr bool empty() const { return rows == 0 || cols == 0; }
  constexpr T* row(std::int64_t i) const { return data + i * ld; }
  constexpr T& operator()(std::int64_t i, std::int64_t j) const { return data[i * ld + j]; }
};

// Contiguous vector. A default-constructed VectorView (null, size 0) means
// "argument absent" where an operation documents an optional vector.
template <class T>
struct VectorView {
  T* data = nullptr;
  std::int64_t size = 0;
  Memory memory = Memory::Host;

  constexpr VectorView() = default;
  constexpr VectorView(T* data_, std::int64_t size_, Memory memory_)
      : data(data_), size(size_), memory(memory_) {}

  template <class U, class = std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>>>
  constexpr VectorView(const VectorView<U>& other)  // NOLINT(google-explicit-constructor)
      : data(other.data), size(other.size), memory(other.memory) {}

  constexpr bool absent() const { return data == nullptr && size == 0; }
  constexpr T& operator[](std::int64_t i) const { return data[i]; }
};

// Builders. ld defaults to cols (a dense matrix).
template <class T>
constexpr MatrixView<T> host_matrix(T* data, std::int64_t rows, std::int64_t cols,
                                    std::int64_t ld = -1) {
  return {data, rows, cols, ld < 0 ? cols : ld, Memory::Host};
}
template <class T>
constexpr MatrixView<T> device_matrix(T* data, std::int64_t rows, std::int64_t cols,
                                      std::int64_t ld = -1) {
  return {data, rows, cols, ld < 0 ? cols : ld, Memory::Device};
}
template <class T>
constexpr VectorView<T> host_vector(T* data, std::int64_t size) {
  return {data, size, Memory::Host};
}
template <class T>
constexpr VectorView<T> device_vector(T* data, std::int64_t size) {
  return {data, size, Memory::Device};
}

}  // namespace kfuse
