// The emulated device's own tests: each a small kernel (or host sequence) with a
// planted defect that the emulator must catch, next to its correct form, which must
// pass. Compiled as the library's kernels are (emulated device code).
#include <gtest/gtest.h>
#include <mma.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "emulator.hpp"
#include "kernels/core/device.cuh"
#include "kfuse/error.hpp"

namespace {

using kfuse::emu::Order;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAsan = true;
#else
constexpr bool kAsan = false;
#endif
#if defined(KFUSE_TEST_UBSAN)
constexpr bool kUbsan = true;
#else
constexpr bool kUbsan = false;
#endif

struct Device {
  cudaStream_t stream = nullptr;
  Device() { EXPECT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess); }
  ~Device() {
    (void)cudaStreamDestroy(stream);
    kfuse::emu::set_order_for_testing(Order::Forward);
  }
  template <class T>
  T* alloc(std::size_t n) {
    void* p = nullptr;
    EXPECT_EQ(cudaMalloc(&p, n * sizeof(T)), cudaSuccess);
    return static_cast<T*>(p);
  }
  template <class T>
  std::vector<T> read(const T* d, std::size_t n) {
    std::vector<T> h(n);
    EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return h;
  }
};

// ------------------------------------------------------------------ a missing __syncthreads
// Each thread publishes its index, then reads its right neighbour's: without the barrier
// between, whether the neighbour has written yet depends on the order the threads run in.
template <bool Barrier>
__global__ void neighbour_kernel(int* out) {
  KFUSE_SHARED(int, s, [64]);
  const unsigned t = threadIdx.x;
  s[t] = -1;
  __syncthreads();
  s[t] = static_cast<int>(t);
  if (Barrier) __syncthreads();
  out[t] = s[t < 63 ? t + 1 : t];
}

template <bool Barrier>
bool neighbour_correct_in(Order order) {
  Device dev;
  kfuse::emu::set_order_for_testing(order, 12345);
  int* out = dev.alloc<int>(64);
  KFUSE_LAUNCH(neighbour_kernel<Barrier>, 1, 64, 0, dev.stream, out);
  const std::vector<int> h = dev.read(out, 64);
  (void)cudaFree(out);
  for (int t = 0; t < 64; ++t)
    if (h[t] != (t < 63 ? t + 1 : t)) return false;
  return true;
}

TEST(EmuDefects, MissingSyncthreadsIsCaughtByAnOrderChange) {
  for (Order o : {Order::Forward, Order::Reverse, Order::Random})
    EXPECT_TRUE(neighbour_correct_in<true>(o)) << static_cast<int>(o);
  // The same kernel without its barrier: right in reverse order, wrong in forward order.
  EXPECT_TRUE(neighbour_correct_in<false>(Order::Reverse));
  EXPECT_FALSE(neighbour_correct_in<false>(Order::Forward));
  EXPECT_FALSE(neighbour_correct_in<false>(Order::Random));
}

// ------------------------------------------------------------------ a barrier reached by part of a
// block
__global__ void early_exit_kernel(int* out) {
  if (threadIdx.x == 5) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

TEST(EmuDefects, BarrierReachedByPartOfTheBlockFailsTheLaunch) {
  Device dev;
  int* out = dev.alloc<int>(32);
  KFUSE_LAUNCH(early_exit_kernel, 1, 32, 0, dev.stream, out);
  EXPECT_EQ(cudaStreamSynchronize(dev.stream), cudaErrorLaunchFailure);
  EXPECT_NE(std::strstr(cudaGetErrorString(cudaErrorLaunchFailure), "early_exit_kernel"), nullptr);
  EXPECT_NE(std::strstr(cudaGetErrorString(cudaErrorLaunchFailure), "has exited"), nullptr);
  (void)cudaGetLastError();
  (void)cudaFree(out);
}

__global__ void split_barrier_kernel(int* out) {
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}

TEST(EmuDefects, ThreadsWaitingAtDifferentBarriersFailTheLaunch) {
  Device dev;
  int* out = dev.alloc<int>(32);
  KFUSE_LAUNCH(split_barrier_kernel, 1, 32, 0, dev.stream, out);
  EXPECT_EQ(cudaStreamSynchronize(dev.stream), cudaErrorLaunchFailure);
  EXPECT_NE(std::strstr(cudaGetErrorString(cudaErrorLaunchFailure), "different barriers"), nullptr);
  (void)cudaGetLastError();
  (void)cudaFree(out);
}

// ------------------------------------------------------------------ an out-of-bounds tile edge
// A tile loop that rounds n up to the tile size and loads without a bound check.
__global__ void tile_sum_kernel(const float* x, int n, bool guarded, float* out) {
  float s = 0.0f;
  for (int base = 0; base < n; base += 32) {
    const int i = base + static_cast<int>(threadIdx.x);
    if (!guarded || i < n) s += x[i];
  }
  atomicAdd(out, s);
}

void tile_sum(bool guarded) {
  Device dev;
  const int n = 40;  // not a multiple of the tile
  float* x = dev.alloc<float>(n);
  float* out = dev.alloc<float>(1);
  (void)cudaMemsetAsync(x, 0, n * sizeof(float), dev.stream);
  (void)cudaMemsetAsync(out, 0, sizeof(float), dev.stream);
  KFUSE_LAUNCH(tile_sum_kernel, 1, 32, 0, dev.stream, x, n, guarded, out);
  const std::vector<float> h = dev.read(out, 1);
  EXPECT_EQ(h[0], 0.0f);
  (void)cudaFree(x);
  (void)cudaFree(out);
}

TEST(EmuDefects, TileEdgeOverReadIsCaughtByAddressSanitizer) {
  tile_sum(true);
  if (!kAsan) GTEST_SKIP() << "needs the AddressSanitizer build (ci-emu)";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(tile_sum(false), "heap-buffer-overflow");
}

// ------------------------------------------------------------------ > 48 KiB dynamic shared memory
__global__ void big_smem_kernel(float* out) {
  KFUSE_DYNAMIC_SHARED(16, float, buf);
  buf[threadIdx.x] = 1.0f;
  __syncthreads();
  out[threadIdx.x] = buf[(threadIdx.x + 1) % 32];
}

TEST(EmuDefects, DynamicSharedMemoryOver48KiBNeedsTheOptIn) {
  Device dev;
  float* out = dev.alloc<float>(32);
  const std::size_t smem = 64 * 1024;
  try {
    KFUSE_LAUNCH(big_smem_kernel, 1, 32, smem, dev.stream, out);
    FAIL() << "launch accepted";
  } catch (const kfuse::Error& e) {
    EXPECT_NE(std::string(e.what()).find("big_smem_kernel"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("48 KiB"), std::string::npos) << e.what();
  }
  ASSERT_EQ(cudaFuncSetAttribute(big_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(smem)),
            cudaSuccess);
  KFUSE_LAUNCH(big_smem_kernel, 1, 32, smem, dev.stream, out);
  EXPECT_EQ(dev.read(out, 32)[0], 1.0f);
  (void)cudaFree(out);
}

__global__ void static_and_dynamic_smem_kernel(float* out) {
  KFUSE_SHARED(float, fixed, [50 * 1024]);  // 200 KiB
  KFUSE_DYNAMIC_SHARED(16, float, extra);
  fixed[threadIdx.x] = 1.0f;
  extra[threadIdx.x] = 2.0f;
  __syncthreads();
  out[threadIdx.x] = fixed[threadIdx.x] + extra[threadIdx.x];
}

TEST(EmuDefects, StaticPlusDynamicSharedMemoryOverTheSmLimitFailsTheLaunch) {
  Device dev;
  float* out = dev.alloc<float>(32);
  ASSERT_EQ(cudaFuncSetAttribute(static_and_dynamic_smem_kernel,
                                 cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024),
            cudaSuccess);
  KFUSE_LAUNCH(static_and_dynamic_smem_kernel, 1, 32, 20 * 1024, dev.stream, out);
  EXPECT_EQ(dev.read(out, 32)[0], 3.0f);  // 220 KiB: fits
  KFUSE_LAUNCH(static_and_dynamic_smem_kernel, 1, 32, 40 * 1024, dev.stream, out);
  EXPECT_EQ(cudaStreamSynchronize(dev.stream), cudaErrorLaunchFailure);  // 240 KiB
  EXPECT_NE(std::strstr(cudaGetErrorString(cudaErrorLaunchFailure), "227 KiB"), nullptr);
  (void)cudaGetLastError();
  (void)cudaFree(out);
}

TEST(EmuDefects, LaunchConfigurationLimits) {
  Device dev;
  float* out = dev.alloc<float>(32);
  EXPECT_THROW(KFUSE_LAUNCH(big_smem_kernel, 1, 1025, 0, dev.stream, out), kfuse::Error);
  EXPECT_THROW(KFUSE_LAUNCH(big_smem_kernel, dim3(1, 65536), 32, 0, dev.stream, out), kfuse::Error);
  EXPECT_THROW(KFUSE_LAUNCH(big_smem_kernel, 1, 32, 228 * 1024, dev.stream, out), kfuse::Error);
  (void)cudaFree(out);
}

// ------------------------------------------------------------------ WMMA alignment, element
// ownership
__global__ void wmma_kernel(const __half* a, const __half* b, float* c, int offset, bool sync,
                            float* mirrored) {
  namespace wmma = nvcuda::wmma;
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::fill_fragment(acc, 0.0f);
  wmma::load_matrix_sync(fa, a + offset, 16);
  wmma::load_matrix_sync(fb, b, 16);
  wmma::mma_sync(acc, fa, fb, acc);
  KFUSE_SHARED_ALIGNED(32, float, tile, [16 * 16]);
  wmma::store_matrix_sync(tile, acc, 16, wmma::mem_row_major);
  if (sync) __syncwarp();
  // Every lane reads elements that other lanes stored.
  for (int i = static_cast<int>(threadIdx.x); i < 256; i += 32)
    mirrored[i] = tile[255 - i];
  wmma::store_matrix_sync(c, acc, 16, wmma::mem_row_major);
}

struct WmmaRun {
  cudaError_t status;
  std::vector<float> c, mirrored;
};

WmmaRun run_wmma(int offset, bool sync) {
  Device dev;
  std::vector<__half> ha(256 + 16), hb(256);
  for (int i = 0; i < 256 + 16; ++i)
    ha[i] = __float2half_rn(static_cast<float>(i % 7) - 3.0f);
  for (int i = 0; i < 256; ++i)
    hb[i] = __float2half_rn(static_cast<float>(i % 5) - 2.0f);
  __half* a = dev.alloc<__half>(256 + 16);
  __half* b = dev.alloc<__half>(256);
  float* c = dev.alloc<float>(256);
  float* m = dev.alloc<float>(256);
  (void)cudaMemcpyAsync(a, ha.data(), ha.size() * 2, cudaMemcpyHostToDevice, dev.stream);
  (void)cudaMemcpyAsync(b, hb.data(), hb.size() * 2, cudaMemcpyHostToDevice, dev.stream);
  KFUSE_LAUNCH(wmma_kernel, 1, 32, 0, dev.stream, a, b, c, offset, sync, m);
  WmmaRun r;
  r.status = cudaStreamSynchronize(dev.stream);
  (void)cudaGetLastError();
  if (r.status == cudaSuccess) {
    r.c = dev.read(c, 256);
    r.mirrored = dev.read(m, 256);
    // The reference: C = A (row-major) * B (col-major), exact in fp32 here.
    for (int i = 0; i < 16; ++i)
      for (int j = 0; j < 16; ++j) {
        float s = 0.0f;
        for (int k = 0; k < 16; ++k)
          s += __half2float(ha[offset + i * 16 + k]) * __half2float(hb[j * 16 + k]);
        EXPECT_EQ(r.c[i * 16 + j], s) << i << "," << j;
      }
  }
  for (void* p :
       {static_cast<void*>(a), static_cast<void*>(b), static_cast<void*>(c), static_cast<void*>(m)})
    (void)cudaFree(p);
  return r;
}

TEST(EmuDefects, MisalignedWmmaPointerFailsTheLaunch) {
  EXPECT_EQ(run_wmma(16, true).status, cudaSuccess);  // 32 bytes in: aligned
  EXPECT_EQ(run_wmma(8, true).status, cudaErrorMisalignedAddress);
}

TEST(EmuDefects, MissingSyncwarpAfterAFragmentStoreShows) {
  const WmmaRun good = run_wmma(0, true);
  ASSERT_EQ(good.status, cudaSuccess);
  for (int i = 0; i < 256; ++i)
    EXPECT_EQ(good.mirrored[i], good.c[255 - i]);
  const WmmaRun bad = run_wmma(0, false);
  ASSERT_EQ(bad.status, cudaSuccess);
  int stale = 0;
  for (int i = 0; i < 256; ++i)
    stale += !(bad.mirrored[i] == bad.c[255 - i]);
  EXPECT_GT(stale, 0);
}

// ------------------------------------------------------------------ a shuffle with a wrong mask
__global__ void warp_sum_kernel(const float* x, unsigned mask, float* out) {
  float v = x[threadIdx.x];
  for (int o = 16; o > 0; o /= 2)
    v += __shfl_xor_sync(mask, v, o);
  out[threadIdx.x] = v;
}

cudaError_t warp_sum(int threads, unsigned mask) {
  Device dev;
  float* x = dev.alloc<float>(32);
  float* out = dev.alloc<float>(32);
  (void)cudaMemsetAsync(x, 0, 32 * sizeof(float), dev.stream);
  KFUSE_LAUNCH(warp_sum_kernel, 1, threads, 0, dev.stream, x, mask, out);
  const cudaError_t err = cudaStreamSynchronize(dev.stream);
  (void)cudaGetLastError();
  (void)cudaFree(x);
  (void)cudaFree(out);
  return err;
}

TEST(EmuDefects, ShuffleWithAWrongMaskFailsTheLaunch) {
  EXPECT_EQ(warp_sum(32, 0xffffffffu), cudaSuccess);
  EXPECT_EQ(warp_sum(16, 0xffffffffu), cudaErrorLaunchFailure);  // lanes 16..31 absent
  EXPECT_NE(std::strstr(cudaGetErrorString(cudaErrorLaunchFailure), "not in the block"), nullptr);
  EXPECT_EQ(warp_sum(32, 0x0000ffffu), cudaErrorLaunchFailure);  // lanes 16..31 wait forever
}

// ------------------------------------------------------------------ stream ordering
__global__ void plus_one_kernel(const float* x, float* y, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) y[i] = x[i] + 1.0f;
}

TEST(EmuDefects, HostReadBeforeSynchronisingSeesNoResult) {
  Device dev;
  const int n = 100;
  std::vector<float> h(n, 1.0f), back(n, -7.0f);
  float* x = dev.alloc<float>(n);
  float* y = dev.alloc<float>(n);
  (void)cudaMemcpyAsync(x, h.data(), n * sizeof(float), cudaMemcpyHostToDevice, dev.stream);
  KFUSE_LAUNCH(plus_one_kernel, 1, 128, 0, dev.stream, x, y, n);
  (void)cudaMemcpyAsync(back.data(), y, n * sizeof(float), cudaMemcpyDeviceToHost, dev.stream);
  EXPECT_EQ(back[0], -7.0f);  // read before synchronising: nothing has landed
  ASSERT_EQ(cudaStreamSynchronize(dev.stream), cudaSuccess);
  EXPECT_EQ(back[0], 2.0f);
  (void)cudaFree(x);
  (void)cudaFree(y);
}

TEST(EmuDefects, PageableUploadIsNotOrderedBeforeANonBlockingStream) {
  Device dev;
  const int n = 100;
  std::vector<float> h(n, 1.0f);
  float* x = dev.alloc<float>(n);
  float* y = dev.alloc<float>(n);
  ASSERT_EQ(cudaMemcpy(x, h.data(), n * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
  KFUSE_LAUNCH(plus_one_kernel, 1, 128, 0, dev.stream, x, y, n);
  EXPECT_TRUE(std::isnan(dev.read(y, n)[0]));  // the kernel ran before the upload landed
  // Synchronising the upload first (as support/buffers.cpp does) orders it.
  ASSERT_EQ(cudaMemcpy(x, h.data(), n * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(cudaStreamLegacy), cudaSuccess);
  KFUSE_LAUNCH(plus_one_kernel, 1, 128, 0, dev.stream, x, y, n);
  EXPECT_EQ(dev.read(y, n)[0], 2.0f);
  (void)cudaFree(x);
  (void)cudaFree(y);
}

TEST(EmuDefects, EventsAndStreamWaitsOrderStreams) {
  Device dev;
  cudaStream_t other = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&other, cudaStreamNonBlocking), cudaSuccess);
  cudaEvent_t uploaded = nullptr;
  ASSERT_EQ(cudaEventCreate(&uploaded), cudaSuccess);
  const int n = 64;
  std::vector<float> h(n, 3.0f);
  float* x = dev.alloc<float>(n);
  float* y = dev.alloc<float>(n);
  (void)cudaMemcpyAsync(x, h.data(), n * sizeof(float), cudaMemcpyHostToDevice, other);
  (void)cudaEventRecord(uploaded, other);
  (void)cudaStreamWaitEvent(dev.stream, uploaded, 0);
  KFUSE_LAUNCH(plus_one_kernel, 1, 64, 0, dev.stream, x, y, n);
  EXPECT_EQ(dev.read(y, n)[0], 4.0f);
  (void)cudaEventDestroy(uploaded);
  (void)cudaStreamDestroy(other);
  (void)cudaFree(x);
  (void)cudaFree(y);
}

// ------------------------------------------------------------------ use after cudaFreeAsync
void use_after_free_async(bool defect) {
  Device dev;
  const int n = 64;
  float* x = dev.alloc<float>(n);
  float* y = dev.alloc<float>(n);
  (void)cudaMemsetAsync(x, 0, n * sizeof(float), dev.stream);
  if (defect) (void)cudaFreeAsync(x, dev.stream);  // freed before the kernel that reads it
  KFUSE_LAUNCH(plus_one_kernel, 1, 64, 0, dev.stream, x, y, n);
  if (!defect) (void)cudaFreeAsync(x, dev.stream);
  EXPECT_EQ(dev.read(y, n)[0], 1.0f);
  (void)cudaFree(y);
}

TEST(EmuDefects, UseAfterFreeAsyncIsCaughtByAddressSanitizer) {
  use_after_free_async(false);
  if (!kAsan) GTEST_SKIP() << "needs the AddressSanitizer build (ci-emu)";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(use_after_free_async(true), "heap-use-after-free");
}

// ------------------------------------------------------------------ misaligned vector loads
__global__ void vector_load_kernel(const float* x, int offset, float* out) {
  const float4 v = reinterpret_cast<const float4*>(x + offset)[threadIdx.x];
  out[threadIdx.x] = v.x + v.y + v.z + v.w;
}

void vector_load(int offset) {
  Device dev;
  float* x = dev.alloc<float>(4 * 32 + 4);
  float* out = dev.alloc<float>(32);
  (void)cudaMemsetAsync(x, 0, (4 * 32 + 4) * sizeof(float), dev.stream);
  KFUSE_LAUNCH(vector_load_kernel, 1, 32, 0, dev.stream, x, offset, out);
  EXPECT_EQ(dev.read(out, 32)[0], 0.0f);
  (void)cudaFree(x);
  (void)cudaFree(out);
}

TEST(EmuDefects, MisalignedVectorLoadIsCaughtByUndefinedBehaviorSanitizer) {
  vector_load(4);
  if (!kUbsan) GTEST_SKIP() << "needs the UndefinedBehaviorSanitizer build (ci-emu)";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(vector_load(1), "misaligned address");
}

// ------------------------------------------------------------------ device memory
TEST(EmuDevice, PointerAttributesTellDeviceFromHost) {
  void* d = nullptr;
  ASSERT_EQ(cudaMalloc(&d, 1000), cudaSuccess);
  int host = 0;
  cudaPointerAttributes a{};
  ASSERT_EQ(cudaPointerGetAttributes(&a, d), cudaSuccess);
  EXPECT_EQ(a.type, cudaMemoryTypeDevice);
  ASSERT_EQ(cudaPointerGetAttributes(&a, static_cast<char*>(d) + 999), cudaSuccess);
  EXPECT_EQ(a.type, cudaMemoryTypeDevice);
  ASSERT_EQ(cudaPointerGetAttributes(&a, &host), cudaSuccess);
  EXPECT_EQ(a.type, cudaMemoryTypeUnregistered);
  // Fresh memory holds a signalling NaN pattern.
  float f;
  ASSERT_EQ(cudaMemcpy(&f, d, sizeof f, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_TRUE(std::isnan(f));
  (void)cudaFree(d);
}

// ------------------------------------------------------------------ exact rounding, TF32
TEST(EmuDevice, Tf32RoundsToNearestTenMantissaBits) {
  EXPECT_EQ(nvcuda::wmma::__float_to_tf32(1.0f + 0x1p-11f), 1.0f + 0x1p-10f);  // tie: away
  EXPECT_EQ(nvcuda::wmma::__float_to_tf32(1.0f + 0x1p-12f), 1.0f);
  EXPECT_EQ(nvcuda::wmma::__float_to_tf32(1.0f + 0x1.8p-11f), 1.0f + 0x1p-10f);
}

}  // namespace
