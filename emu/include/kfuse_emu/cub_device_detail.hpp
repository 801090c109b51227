// Shared pieces of the emulated CUB device-wide algorithms (cub/device/*.cuh in this
// directory's parent): CUB's temporary-storage protocol and the radix sort's key bits.
// Nothing here is in namespace cub, so that these headers never collide with real CUB ones.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace kfuse::emu::cub_detail {

constexpr std::size_t kAlign = 256;  // CUB's AliasTemporaries alignment

constexpr std::size_t align_up(std::size_t bytes) {
  return (bytes + kAlign - 1) & ~(kAlign - 1);
}

// CUB's protocol for one blob holding `count` allocations: with d_temp_storage == nullptr,
// write the bytes needed (each allocation rounded up to 256 bytes, plus 255 to align the
// blob) and return; otherwise fail with cudaErrorInvalidValue when temp_storage_bytes is
// smaller than that, else point `parts` at the 256-byte aligned allocations.
template <int N>
cudaError_t alias_temporaries(void* d_temp_storage, std::size_t& temp_storage_bytes,
                              const std::size_t (&sizes)[N], void* (&parts)[N]) {
  std::size_t offsets[N];
  std::size_t needed = 0;
  for (int i = 0; i < N; ++i) {
    offsets[i] = needed;
    needed += align_up(sizes[i]);
  }
  needed += kAlign - 1;
  if (d_temp_storage == nullptr) {
    temp_storage_bytes = needed;
    return cudaSuccess;
  }
  if (temp_storage_bytes < needed) return cudaErrorInvalidValue;
  const auto base = (reinterpret_cast<std::uintptr_t>(d_temp_storage) + kAlign - 1) & ~(kAlign - 1);
  for (int i = 0; i < N; ++i)
    parts[i] = reinterpret_cast<void*>(base + offsets[i]);
  return cudaSuccess;
}

template <typename Key>
using KeyBits = std::conditional_t<
    sizeof(Key) == 1, std::uint8_t,
    std::conditional_t<sizeof(Key) == 2, std::uint16_t,
                       std::conditional_t<sizeof(Key) == 4, std::uint32_t, std::uint64_t>>>;

// The bits CUB's radix sort orders a key by (its TwiddleIn): unsigned integers as they are,
// signed integers with the sign bit flipped, floating point with the sign bit flipped when
// positive and every bit flipped when negative, -0.0 taken as +0.0.
template <typename Key>
KeyBits<Key> radix_bits(Key key) {
  static_assert(std::is_integral<Key>::value || std::is_same<Key, float>::value ||
                    std::is_same<Key, double>::value,
                "emulated DeviceRadixSort: integral, float or double keys");
  static_assert(sizeof(Key) == sizeof(KeyBits<Key>), "key size");
  using U = KeyBits<Key>;
  constexpr U high = static_cast<U>(U(1) << (8 * sizeof(U) - 1));
  U u;
  std::memcpy(&u, &key, sizeof(U));
  if constexpr (std::is_floating_point<Key>::value) {
    if (u == high) u = 0;  // -0.0
    return static_cast<U>((u & high) ? ~u : (u ^ high));
  } else if constexpr (std::is_signed<Key>::value) {
    return static_cast<U>(u ^ high);
  } else {
    return u;
  }
}

// Where a sort's passes write: the last one into the output, so that the passes alternate
// between the output and the temporary copy.
inline bool pass_writes_output(int pass, int passes) {
  return (passes - pass) % 2 == 1;
}

// A stable LSD radix sort of n keys (and values, when `Value` is not void) on bits
// [begin_bit, end_bit), 8 bits a pass, alternating between the output arrays and the
// temporaries (which it really uses, so that an undersized or freed blob shows up under
// AddressSanitizer). begin_bit == end_bit copies the input.
template <typename Key, typename Value>
void radix_sort(const Key* keys_in, Key* keys_out, Key* keys_tmp, const Value* values_in,
                Value* values_out, Value* values_tmp, std::int64_t n, int begin_bit, int end_bit) {
  constexpr bool kValues = !std::is_void<Value>::value;
  const int passes = (end_bit - begin_bit + 7) / 8;
  if (passes == 0) {
    std::memmove(keys_out, keys_in, static_cast<std::size_t>(n) * sizeof(Key));
    if constexpr (kValues)
      std::memmove(values_out, values_in, static_cast<std::size_t>(n) * sizeof(Value));
    return;
  }
  const Key* src_k = keys_in;
  const Value* src_v = values_in;
  for (int pass = 0; pass < passes; ++pass) {
    const int shift = begin_bit + 8 * pass;
    const int width = end_bit - shift < 8 ? end_bit - shift : 8;
    const std::uint64_t mask = (std::uint64_t(1) << width) - 1;
    Key* dst_k = pass_writes_output(pass, passes) ? keys_out : keys_tmp;
    Value* dst_v = pass_writes_output(pass, passes) ? values_out : values_tmp;
    std::int64_t start[257] = {};
    auto digit = [&](Key k) {
      return static_cast<int>((static_cast<std::uint64_t>(radix_bits(k)) >> shift) & mask);
    };
    for (std::int64_t i = 0; i < n; ++i)
      ++start[digit(src_k[i]) + 1];
    for (int d = 0; d < 256; ++d)
      start[d + 1] += start[d];
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t to = start[digit(src_k[i])]++;
      dst_k[to] = src_k[i];
      if constexpr (kValues) dst_v[to] = src_v[i];
    }
    src_k = dst_k;
    src_v = dst_v;
  }
}

}  // namespace kfuse::emu::cub_detail
