// cub::DeviceScan for the emulated device (shadows CCCL's header when the emulation's include
// directory comes first): ExclusiveSum and InclusiveSum, out of place and in place, with CUB's
// contract. The two-call temporary-storage protocol (a size query with d_temp_storage ==
// nullptr, then cudaErrorInvalidValue when temp_storage_bytes is smaller than the size asked
// for, checked even for an empty scan, as CUB does), the sum in the input's value type
// (promoted as `a + b` promotes it; ExclusiveSum starts from a value-initialised one), and
// the scan itself queued on `stream`: nothing is computed before the host synchronises.
// d_in == d_out scans in place; other overlaps are not allowed.
//
// Stricter than CUB, whose behaviour is undefined there: a negative num_items is
// cudaErrorInvalidValue.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <type_traits>
#include <utility>

#include "kfuse_emu/cub_device_detail.hpp"
#include "kfuse_emu/stream.hpp"

namespace cub {

struct DeviceScan {
  template <typename InputIteratorT, typename OutputIteratorT, typename NumItemsT>
  static cudaError_t ExclusiveSum(void* d_temp_storage, size_t& temp_storage_bytes,
                                  InputIteratorT d_in, OutputIteratorT d_out, NumItemsT num_items,
                                  cudaStream_t stream = 0) {
    return scan<true>(d_temp_storage, temp_storage_bytes, d_in, d_out,
                      static_cast<std::int64_t>(num_items), stream);
  }

  template <typename IteratorT, typename NumItemsT>
  static cudaError_t ExclusiveSum(void* d_temp_storage, size_t& temp_storage_bytes,
                                  IteratorT d_data, NumItemsT num_items, cudaStream_t stream = 0) {
    return ExclusiveSum(d_temp_storage, temp_storage_bytes, d_data, d_data, num_items, stream);
  }

  template <typename InputIteratorT, typename OutputIteratorT, typename NumItemsT>
  static cudaError_t InclusiveSum(void* d_temp_storage, size_t& temp_storage_bytes,
                                  InputIteratorT d_in, OutputIteratorT d_out, NumItemsT num_items,
                                  cudaStream_t stream = 0) {
    return scan<false>(d_temp_storage, temp_storage_bytes, d_in, d_out,
                       static_cast<std::int64_t>(num_items), stream);
  }

  template <typename IteratorT, typename NumItemsT>
  static cudaError_t InclusiveSum(void* d_temp_storage, size_t& temp_storage_bytes,
                                  IteratorT d_data, NumItemsT num_items, cudaStream_t stream = 0) {
    return InclusiveSum(d_temp_storage, temp_storage_bytes, d_data, d_data, num_items, stream);
  }

 private:
  // CUB's single-pass scan keeps one tile-status word pair per tile of items.
  static constexpr std::int64_t kTileItems = 2048;

  template <bool Exclusive, typename InputIteratorT, typename OutputIteratorT>
  static cudaError_t scan(void* d_temp_storage, size_t& temp_storage_bytes, InputIteratorT in,
                          OutputIteratorT out, std::int64_t n, cudaStream_t stream) {
    namespace d = kfuse::emu::cub_detail;
    if (n < 0) return cudaErrorInvalidValue;
    const std::size_t tiles = static_cast<std::size_t>((n + kTileItems - 1) / kTileItems);
    const std::size_t sizes[1] = {(tiles + 32) * 16};
    void* parts[1] = {};
    const cudaError_t e = d::alias_temporaries(d_temp_storage, temp_storage_bytes, sizes, parts);
    if (e != cudaSuccess || d_temp_storage == nullptr || n == 0) return e;
    void* status = parts[0];
    const std::size_t status_bytes = sizes[0];
    return kfuse::emu::enqueue(stream, [=] {
      using In = typename std::iterator_traits<InputIteratorT>::value_type;
      using Acc = std::decay_t<decltype(std::declval<In>() + std::declval<In>())>;
      // The tile status words are written, as CUB writes them, so that a blob that is too
      // small or already freed shows up under AddressSanitizer.
      std::memset(status, 0, status_bytes);
      Acc acc{};
      for (std::int64_t i = 0; i < n; ++i) {
        const Acc x = static_cast<Acc>(in[i]);  // read before the in-place write
        if (Exclusive) {
          out[i] = acc;
          acc = acc + x;
        } else {
          acc = i == 0 ? x : acc + x;
          out[i] = acc;
        }
      }
    });
  }
};

}  // namespace cub
