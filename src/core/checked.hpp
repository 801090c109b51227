// Checked 64-bit size arithmetic: every extent, leading dimension and derived size that
// comes from a caller goes through these before it is trusted, so that an overflow is an
// argument to reject, never a wrapped size (signed overflow is undefined behaviour).
#pragma once

#include <cstdint>
#include <optional>

namespace kfuse::detail {

inline std::optional<std::int64_t> checked_mul(std::int64_t a, std::int64_t b) {
  std::int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

inline std::optional<std::int64_t> checked_add(std::int64_t a, std::int64_t b) {
  std::int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

// The bytes a view of `elements` elements of `element_bytes` each spans from `data`, if the
// range fits in a signed 64-bit size and does not wrap the address space.
inline std::optional<std::int64_t> checked_bytes(const void* data, std::int64_t elements,
                                                 std::int64_t element_bytes) {
  const std::optional<std::int64_t> bytes = checked_mul(elements, element_bytes);
  if (!bytes) return std::nullopt;
  std::uintptr_t end;
  if (__builtin_add_overflow(reinterpret_cast<std::uintptr_t>(data),
                             static_cast<std::uintptr_t>(*bytes), &end))
    return std::nullopt;
  return bytes;
}

// The elements a row-major rows x cols view with leading dimension ld spans,
// (rows - 1) * ld + cols (0 when empty), if that fits in 64 bits. Extents must be >= 0.
inline std::optional<std::int64_t> span_elements(std::int64_t rows, std::int64_t cols,
                                                 std::int64_t ld) {
  if (rows == 0 || cols == 0) return 0;
  const std::optional<std::int64_t> before_last = checked_mul(rows - 1, ld);
  if (!before_last) return std::nullopt;
  return checked_add(*before_last, cols);
}

}  // namespace kfuse::detail
