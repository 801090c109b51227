// The emulated CUB device-wide algorithms (emu/include/cub/device/*.cuh) against std::
// algorithms: the radix sort's stability and bit ranges on random keys of several types, the
// scans, the temporary-storage protocol and its size checks, and that nothing runs before the
// stream synchronises.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

namespace {

struct Stream {
  cudaStream_t s = nullptr;
  Stream() { EXPECT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess); }
  ~Stream() { (void)cudaStreamDestroy(s); }
};

// A temporary-storage blob of exactly `bytes`, followed by guard bytes that must stay intact
// (under AddressSanitizer an access past `bytes` is caught anyway: the blob is its own
// allocation when guard == 0).
struct Blob {
  static constexpr std::size_t kGuard = 64;
  std::vector<unsigned char> bytes;
  std::size_t size;
  explicit Blob(std::size_t n) : bytes(n + kGuard, 0xab), size(n) {}
  void* data() { return bytes.data(); }
  bool guard_intact() const {
    return std::all_of(bytes.begin() + size, bytes.end(),
                       [](unsigned char b) { return b == 0xab; });
  }
};

// Sorts with the two-call protocol on `stream`, and synchronises it.
template <typename K, typename V>
void sort_pairs(const std::vector<K>& keys, const std::vector<V>& values, std::vector<K>& keys_out,
                std::vector<V>& values_out, int begin_bit, int end_bit, cudaStream_t stream) {
  const int n = static_cast<int>(keys.size());
  keys_out.assign(keys.size(), K{});
  values_out.assign(values.size(), V{});
  std::size_t bytes = 0;
  ASSERT_EQ(
      cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys.data(), keys_out.data(), values.data(),
                                      values_out.data(), n, begin_bit, end_bit, stream),
      cudaSuccess);
  ASSERT_GT(bytes, 0u);
  Blob temp(bytes);
  ASSERT_EQ(cub::DeviceRadixSort::SortPairs(temp.data(), bytes, keys.data(), keys_out.data(),
                                            values.data(), values_out.data(), n, begin_bit, end_bit,
                                            stream),
            cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  EXPECT_TRUE(temp.guard_intact());
}

// The expected result: std::stable_sort of (key, index) pairs by `order(key)`.
template <typename K, typename Order>
void expect_stable_sorted(const std::vector<K>& keys, const std::vector<K>& keys_out,
                          const std::vector<std::int32_t>& values_out, Order order) {
  std::vector<std::int32_t> idx(keys.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(),
                   [&](std::int32_t a, std::int32_t b) { return order(keys[a]) < order(keys[b]); });
  for (std::size_t i = 0; i < keys.size(); ++i) {
    ASSERT_EQ(values_out[i], idx[i]) << "position " << i;
    ASSERT_EQ(std::memcmp(&keys_out[i], &keys[idx[i]], sizeof(K)), 0) << "position " << i;
  }
}

TEST(EmuCubRadixSort, SortPairsIsStableOnRandomKeysWithTies) {
  std::mt19937 rng(1);
  Stream stream;
  for (int n : {1, 2, 255, 256, 257, 5000}) {
    SCOPED_TRACE(n);
    std::vector<std::uint32_t> keys(n);
    std::uniform_int_distribution<std::uint32_t> few(0, 40);  // many ties
    for (auto& k : keys)
      k = few(rng) * 0x01010101u;
    std::vector<std::int32_t> values(n);
    std::iota(values.begin(), values.end(), 0);
    // Every number of 8-bit passes: a pass that reversed ties would be undone by an even
    // number of them.
    for (int end_bit : {8, 16, 24, 32}) {
      SCOPED_TRACE(end_bit);
      std::vector<std::uint32_t> keys_out;
      std::vector<std::int32_t> values_out;
      sort_pairs(keys, values, keys_out, values_out, 0, end_bit, stream.s);
      const std::uint64_t mask = (std::uint64_t(1) << end_bit) - 1;
      expect_stable_sorted(keys, keys_out, values_out,
                           [&](std::uint32_t k) { return std::uint64_t(k) & mask; });
    }
  }
}

TEST(EmuCubRadixSort, OnlyTheBitRangeOrdersTheKeys) {
  std::mt19937 rng(2);
  Stream stream;
  const int n = 3000;
  std::vector<std::uint32_t> keys(n);
  for (auto& k : keys)
    k = static_cast<std::uint32_t>(rng());
  std::vector<std::int32_t> values(n);
  std::iota(values.begin(), values.end(), 0);
  for (const auto& range :
       {std::pair{4, 13}, std::pair{0, 7}, std::pair{17, 32}, std::pair{8, 16}}) {
    const int begin = range.first, end = range.second;  // (lambdas cannot capture bindings)
    SCOPED_TRACE(begin);
    std::vector<std::uint32_t> keys_out;
    std::vector<std::int32_t> values_out;
    sort_pairs(keys, values, keys_out, values_out, begin, end, stream.s);
    const std::uint32_t mask = static_cast<std::uint32_t>((std::uint64_t(1) << (end - begin)) - 1);
    expect_stable_sorted(keys, keys_out, values_out,
                         [&](std::uint32_t k) { return (k >> begin) & mask; });
  }
  // An empty bit range copies the input.
  std::vector<std::uint32_t> keys_out;
  std::vector<std::int32_t> values_out;
  sort_pairs(keys, values, keys_out, values_out, 5, 5, stream.s);
  EXPECT_EQ(keys_out, keys);
  EXPECT_EQ(values_out, values);
}

TEST(EmuCubRadixSort, SignedAndFloatingPointKeysSortByValue) {
  std::mt19937 rng(3);
  Stream stream;
  const int n = 2000;
  std::vector<std::int32_t> values(n);
  std::iota(values.begin(), values.end(), 0);
  {
    std::vector<std::int32_t> keys(n);
    std::uniform_int_distribution<std::int32_t> u(-50, 50);
    for (auto& k : keys)
      k = u(rng) * 40000000;
    keys[0] = std::numeric_limits<std::int32_t>::min();
    keys[1] = std::numeric_limits<std::int32_t>::max();
    std::vector<std::int32_t> keys_out, values_out;
    sort_pairs(keys, values, keys_out, values_out, 0, 32, stream.s);
    expect_stable_sorted(keys, keys_out, values_out, [](std::int32_t k) { return k; });
  }
  {
    std::vector<float> keys(n);
    std::uniform_int_distribution<int> u(-20, 20);
    for (auto& k : keys)
      k = static_cast<float>(u(rng)) * 0.37f;
    // -0.0 and +0.0 are one key: ties that keep their input order.
    for (int i = 0; i < n; i += 7)
      keys[i] = (i / 7) % 2 ? -0.0f : 0.0f;
    keys[3] = std::numeric_limits<float>::infinity();
    keys[4] = -std::numeric_limits<float>::infinity();
    keys[5] = -std::numeric_limits<float>::denorm_min();
    std::vector<float> keys_out;
    std::vector<std::int32_t> values_out;
    sort_pairs(keys, values, keys_out, values_out, 0, 32, stream.s);
    expect_stable_sorted(keys, keys_out, values_out, [](float k) { return k; });
  }
  {
    std::vector<double> keys(n);
    std::normal_distribution<double> g;
    for (auto& k : keys)
      k = std::round(g(rng) * 4) / 4;
    std::vector<double> keys_out;
    std::vector<std::int32_t> values_out;
    sort_pairs(keys, values, keys_out, values_out, 0, 64, stream.s);
    expect_stable_sorted(keys, keys_out, values_out, [](double k) { return k; });
  }
}

TEST(EmuCubRadixSort, SortKeysOnWideAndNarrowKeys) {
  std::mt19937_64 rng(4);
  Stream stream;
  std::vector<std::uint64_t> wide(777);
  for (auto& k : wide)
    k = rng();
  std::vector<std::uint64_t> wide_out(wide.size());
  std::size_t bytes = 0;
  ASSERT_EQ(cub::DeviceRadixSort::SortKeys(nullptr, bytes, wide.data(), wide_out.data(),
                                           wide.size(), 0, 64, stream.s),
            cudaSuccess);
  Blob temp(bytes);
  ASSERT_EQ(cub::DeviceRadixSort::SortKeys(temp.data(), bytes, wide.data(), wide_out.data(),
                                           wide.size(), 0, 64, stream.s),
            cudaSuccess);
  std::vector<std::uint8_t> narrow(300), narrow_out(300);
  for (auto& k : narrow)
    k = static_cast<std::uint8_t>(rng());
  std::size_t nbytes = 0;
  ASSERT_EQ(cub::DeviceRadixSort::SortKeys(nullptr, nbytes, narrow.data(), narrow_out.data(), 300),
            cudaSuccess);
  Blob ntemp(nbytes);
  ASSERT_EQ(
      cub::DeviceRadixSort::SortKeys(ntemp.data(), nbytes, narrow.data(), narrow_out.data(), 300),
      cudaSuccess);  // default bits and the legacy default stream
  ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::sort(wide.begin(), wide.end());
  std::sort(narrow.begin(), narrow.end());
  EXPECT_EQ(wide_out, wide);
  EXPECT_EQ(narrow_out, narrow);
  EXPECT_TRUE(temp.guard_intact());
  EXPECT_TRUE(ntemp.guard_intact());
}

TEST(EmuCubRadixSort, TemporaryStorageProtocol) {
  Stream stream;
  std::vector<std::uint32_t> keys = {5, 3, 9, 1}, keys_out(4, 77);
  std::vector<std::int32_t> values = {0, 1, 2, 3}, values_out(4, 77);
  std::size_t bytes = 0;
  ASSERT_EQ(cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys.data(), keys_out.data(),
                                            values.data(), values_out.data(), 4, 0, 32, stream.s),
            cudaSuccess);
  ASSERT_GT(bytes, 0u);
  // One byte short: cudaErrorInvalidValue, and nothing queued.
  Blob small(bytes - 1);
  std::size_t short_bytes = bytes - 1;
  EXPECT_EQ(cub::DeviceRadixSort::SortPairs(small.data(), short_bytes, keys.data(), keys_out.data(),
                                            values.data(), values_out.data(), 4, 0, 32, stream.s),
            cudaErrorInvalidValue);
  ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
  EXPECT_EQ(keys_out, std::vector<std::uint32_t>(4, 77));
  // Exactly what was asked for: queued, and not run before the stream synchronises.
  Blob exact(bytes);
  ASSERT_EQ(cub::DeviceRadixSort::SortPairs(exact.data(), bytes, keys.data(), keys_out.data(),
                                            values.data(), values_out.data(), 4, 0, 32, stream.s),
            cudaSuccess);
  EXPECT_EQ(keys_out, std::vector<std::uint32_t>(4, 77)) << "sorted at call time";
  ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
  EXPECT_EQ(keys_out, (std::vector<std::uint32_t>{1, 3, 5, 9}));
  EXPECT_EQ(values_out, (std::vector<std::int32_t>{3, 1, 0, 2}));
  EXPECT_TRUE(exact.guard_intact());
  // No items: CUB asks for one byte and returns without looking at the storage.
  std::size_t empty = 0;
  EXPECT_EQ(cub::DeviceRadixSort::SortPairs(nullptr, empty, keys.data(), keys_out.data(),
                                            values.data(), values_out.data(), 0, 0, 32, stream.s),
            cudaSuccess);
  EXPECT_EQ(empty, 1u);
  // A bit range outside the key (undefined in CUB) is refused.
  EXPECT_EQ(cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys.data(), keys_out.data(),
                                            values.data(), values_out.data(), 4, 0, 33, stream.s),
            cudaErrorInvalidValue);
  EXPECT_EQ(cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys.data(), keys_out.data(),
                                            values.data(), values_out.data(), 4, 9, 8, stream.s),
            cudaErrorInvalidValue);
}

TEST(EmuCubRadixSort, ADestroyedStreamIsRefused) {
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(cudaStreamDestroy(s), cudaSuccess);
  std::vector<std::uint32_t> keys = {2, 1}, keys_out(2);
  std::size_t bytes = 0;
  ASSERT_EQ(
      cub::DeviceRadixSort::SortKeys(nullptr, bytes, keys.data(), keys_out.data(), 2, 0, 32, s),
      cudaSuccess);
  Blob temp(bytes);
  EXPECT_EQ(
      cub::DeviceRadixSort::SortKeys(temp.data(), bytes, keys.data(), keys_out.data(), 2, 0, 32, s),
      cudaErrorInvalidResourceHandle);
}

TEST(EmuCubScan, ExclusiveAndInclusiveSumsOutOfPlaceAndInPlace) {
  std::mt19937 rng(5);
  Stream stream;
  for (int n : {1, 2, 1000, 4097}) {
    SCOPED_TRACE(n);
    std::vector<std::int32_t> in(n);
    std::uniform_int_distribution<std::int32_t> u(-1000, 1000);
    for (auto& x : in)
      x = u(rng);
    std::vector<std::int32_t> ex(n, 99), inc(n, 99), ex_in_place = in, inc_in_place = in;
    std::size_t b1 = 0, b2 = 0, b3 = 0, b4 = 0;
    ASSERT_EQ(cub::DeviceScan::ExclusiveSum(nullptr, b1, in.data(), ex.data(), n, stream.s),
              cudaSuccess);
    ASSERT_EQ(cub::DeviceScan::InclusiveSum(nullptr, b2, in.data(), inc.data(), n, stream.s),
              cudaSuccess);
    ASSERT_EQ(cub::DeviceScan::ExclusiveSum(nullptr, b3, ex_in_place.data(), n, stream.s),
              cudaSuccess);
    ASSERT_EQ(cub::DeviceScan::InclusiveSum(nullptr, b4, inc_in_place.data(), n, stream.s),
              cudaSuccess);
    Blob t1(b1), t2(b2), t3(b3), t4(b4);
    ASSERT_EQ(cub::DeviceScan::ExclusiveSum(t1.data(), b1, in.data(), ex.data(), n, stream.s),
              cudaSuccess);
    ASSERT_EQ(cub::DeviceScan::InclusiveSum(t2.data(), b2, in.data(), inc.data(), n, stream.s),
              cudaSuccess);
    ASSERT_EQ(cub::DeviceScan::ExclusiveSum(t3.data(), b3, ex_in_place.data(), n, stream.s),
              cudaSuccess);
    ASSERT_EQ(cub::DeviceScan::InclusiveSum(t4.data(), b4, inc_in_place.data(), n, stream.s),
              cudaSuccess);
    EXPECT_EQ(ex, std::vector<std::int32_t>(n, 99)) << "scanned at call time";
    ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
    std::vector<std::int32_t> want_ex(n), want_inc(n);
    std::exclusive_scan(in.begin(), in.end(), want_ex.begin(), 0);
    std::inclusive_scan(in.begin(), in.end(), want_inc.begin());
    EXPECT_EQ(ex, want_ex);
    EXPECT_EQ(inc, want_inc);
    EXPECT_EQ(ex_in_place, want_ex);
    EXPECT_EQ(inc_in_place, want_inc);
    for (const Blob* t : {&t1, &t2, &t3, &t4})
      EXPECT_TRUE(t->guard_intact());
  }
}

// The sum's type is the input's, promoted as a + b promotes it: bytes sum past 255 into an int.
TEST(EmuCubScan, SmallInputTypesArePromoted) {
  Stream stream;
  std::vector<std::uint8_t> in(300, 200);
  std::vector<std::int64_t> out(300);
  std::size_t bytes = 0;
  ASSERT_EQ(cub::DeviceScan::InclusiveSum(nullptr, bytes, in.data(), out.data(), 300, stream.s),
            cudaSuccess);
  Blob temp(bytes);
  ASSERT_EQ(cub::DeviceScan::InclusiveSum(temp.data(), bytes, in.data(), out.data(), 300, stream.s),
            cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
  EXPECT_EQ(out[299], 300 * 200);
}

TEST(EmuCubScan, TemporaryStorageProtocol) {
  Stream stream;
  std::vector<std::int32_t> in = {1, 2, 3}, out(3, 0);
  std::size_t bytes = 0;
  ASSERT_EQ(cub::DeviceScan::ExclusiveSum(nullptr, bytes, in.data(), out.data(), 3, stream.s),
            cudaSuccess);
  ASSERT_GT(bytes, 0u);
  Blob small(bytes - 1);
  std::size_t short_bytes = bytes - 1;
  EXPECT_EQ(
      cub::DeviceScan::ExclusiveSum(small.data(), short_bytes, in.data(), out.data(), 3, stream.s),
      cudaErrorInvalidValue);
  // CUB checks the size before it looks at num_items: an empty scan needs its bytes too.
  std::size_t empty = 0;
  ASSERT_EQ(cub::DeviceScan::ExclusiveSum(nullptr, empty, in.data(), out.data(), 0, stream.s),
            cudaSuccess);
  ASSERT_GT(empty, 0u);
  std::size_t too_few = empty - 1;
  EXPECT_EQ(
      cub::DeviceScan::ExclusiveSum(small.data(), too_few, in.data(), out.data(), 0, stream.s),
      cudaErrorInvalidValue);
  EXPECT_EQ(cub::DeviceScan::ExclusiveSum(small.data(), empty, in.data(), out.data(), 0, stream.s),
            cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
  EXPECT_EQ(out, std::vector<std::int32_t>(3, 0));
}

}  // namespace
