// cub::DeviceRadixSort for the emulated device (shadows CCCL's header when the emulation's
// include directory comes first): the key-value and keys-only ascending sorts kfuse uses, with
// CUB's contract. The two-call temporary-storage protocol (a size query with
// d_temp_storage == nullptr, then cudaErrorInvalidValue when temp_storage_bytes is smaller
// than the size asked for), bits [begin_bit, end_bit) of the keys, a STABLE order (ties keep
// their input order; -0.0 == +0.0), and the sort itself queued on `stream`: nothing is sorted
// before the host synchronises. The input and output ranges must not overlap.
//
// Stricter than CUB, whose behaviour is undefined there: a negative num_items or a bit range
// outside [0, 8 * sizeof(KeyT)] with begin_bit <= end_bit is cudaErrorInvalidValue.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kfuse_emu/cub_device_detail.hpp"
#include "kfuse_emu/stream.hpp"

namespace cub {

struct DeviceRadixSort {
  template <typename KeyT, typename ValueT, typename NumItemsT>
  static cudaError_t SortPairs(void* d_temp_storage, size_t& temp_storage_bytes,
                               const KeyT* d_keys_in, KeyT* d_keys_out, const ValueT* d_values_in,
                               ValueT* d_values_out, NumItemsT num_items, int begin_bit = 0,
                               int end_bit = sizeof(KeyT) * 8, cudaStream_t stream = 0) {
    return sort<KeyT, ValueT>(d_temp_storage, temp_storage_bytes, d_keys_in, d_keys_out,
                              d_values_in, d_values_out, static_cast<std::int64_t>(num_items),
                              begin_bit, end_bit, stream);
  }

  template <typename KeyT, typename NumItemsT>
  static cudaError_t SortKeys(void* d_temp_storage, size_t& temp_storage_bytes,
                              const KeyT* d_keys_in, KeyT* d_keys_out, NumItemsT num_items,
                              int begin_bit = 0, int end_bit = sizeof(KeyT) * 8,
                              cudaStream_t stream = 0) {
    return sort<KeyT, void>(d_temp_storage, temp_storage_bytes, d_keys_in, d_keys_out, nullptr,
                            nullptr, static_cast<std::int64_t>(num_items), begin_bit, end_bit,
                            stream);
  }

 private:
  template <typename KeyT, typename ValueT>
  static cudaError_t sort(void* d_temp_storage, size_t& temp_storage_bytes, const KeyT* keys_in,
                          KeyT* keys_out, const ValueT* values_in, ValueT* values_out,
                          std::int64_t n, int begin_bit, int end_bit, cudaStream_t stream) {
    namespace d = kfuse::emu::cub_detail;
    if (n < 0 || begin_bit < 0 || end_bit > static_cast<int>(8 * sizeof(KeyT)) ||
        begin_bit > end_bit)
      return cudaErrorInvalidValue;
    // CUB: an empty sort asks for one byte and checks nothing.
    if (n == 0) {
      if (d_temp_storage == nullptr) temp_storage_bytes = 1;
      return cudaSuccess;
    }
    const std::size_t count = static_cast<std::size_t>(n);
    std::size_t value_bytes = 0;
    if constexpr (!std::is_void<ValueT>::value) value_bytes = count * sizeof(ValueT);
    const std::size_t sizes[2] = {count * sizeof(KeyT), value_bytes};
    void* parts[2] = {};
    const cudaError_t e = d::alias_temporaries(d_temp_storage, temp_storage_bytes, sizes, parts);
    if (e != cudaSuccess || d_temp_storage == nullptr) return e;
    auto* keys_tmp = static_cast<KeyT*>(parts[0]);
    auto* values_tmp = static_cast<ValueT*>(parts[1]);
    return kfuse::emu::enqueue(stream, [=] {
      d::radix_sort<KeyT, ValueT>(keys_in, keys_out, keys_tmp, values_in, values_out, values_tmp, n,
                                  begin_bit, end_bit);
    });
  }
};

}  // namespace cub
