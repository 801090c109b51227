// The shared vocabulary: contexts without a driver, views, errors, names.
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "kfuse/kfuse.hpp"
#include "support/test_memory.hpp"
#include "support/test_util.hpp"

namespace kfuse::test {
namespace {

TEST(Context, BestPicksCudaOnlyWithADevice) {
  Context ctx = Context::best();
  if (cuda_device_count() > 0) {
    EXPECT_EQ(ctx.backend(), Backend::Cuda);
    EXPECT_EQ(ctx.device(), 0);
  } else {
    EXPECT_EQ(ctx.backend(), Backend::Cpu);
    EXPECT_EQ(ctx.device(), -1);
    EXPECT_EQ(ctx.stream(), nullptr);
  }
}

TEST(Context, CudaWithoutDeviceIsAnErrorNotACrash) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is present";
  const Status expected = built_with_cuda() ? Status::NoDevice : Status::Unsupported;
  expect_error([] { (void)Context::cuda(0); }, expected, "Context::cuda");
  expect_error([] { (void)Context::cuda(0, nullptr); }, expected, "Context::cuda");
}

TEST(Context, CpuContextHasNoGpuResources) {
  Context ctx = Context::cpu();
  EXPECT_EQ(ctx.backend(), Backend::Cpu);
  EXPECT_FALSE(ctx.owns_stream());
  expect_error([&] { (void)ctx.cublas(); }, Status::Unsupported, "cuBLAS");
  expect_error([&] { (void)ctx.allocator(); }, Status::Unsupported, "Context::allocator");
  expect_error([&] { ctx.set_allocator(nullptr); }, Status::Unsupported, "Context::set_allocator");
  ctx.synchronize();  // a no-op
  Context moved = std::move(ctx);
  EXPECT_EQ(moved.backend(), Backend::Cpu);
}

TEST(Context, CudaContextOwnsAStream) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no usable CUDA device";
  Context ctx = Context::cuda(0);
  EXPECT_EQ(ctx.backend(), Backend::Cuda);
  EXPECT_TRUE(ctx.owns_stream());
  EXPECT_NE(ctx.stream(), nullptr);
  EXPECT_NE(ctx.cublas(), nullptr);
  EXPECT_EQ(ctx.cublas(), ctx.cublas());  // created once
  ctx.synchronize();
  Context borrowed = Context::cuda(0, ctx.stream());
  EXPECT_FALSE(borrowed.owns_stream());
  EXPECT_EQ(borrowed.stream(), ctx.stream());
  expect_error([] { (void)Context::cuda(cuda_device_count()); }, Status::InvalidArgument, "device");
}

// Workspace from a caller's allocator must honour the 256-byte alignment contract;
// an allocator that does not is refused before any kernel sees its memory.
// The draw cache's budget: the default, KFUSE_DRAW_CACHE_BYTES when it is a byte
// count (read when a context is created), the default again when it is not.
TEST(Context, DrawCacheBudgetFromTheEnvironment) {
  const char* saved = std::getenv("KFUSE_DRAW_CACHE_BYTES");
  const std::string restore = saved ? saved : "";
  unsetenv("KFUSE_DRAW_CACHE_BYTES");
  EXPECT_EQ(Context::cpu().draw_cache_budget(), Context::kDefaultDrawCacheBytes);
  setenv("KFUSE_DRAW_CACHE_BYTES", "12345", 1);
  EXPECT_EQ(Context::cpu().draw_cache_budget(), 12345u);
  setenv("KFUSE_DRAW_CACHE_BYTES", "0", 1);
  EXPECT_EQ(Context::cpu().draw_cache_budget(), 0u);
  for (const char* bad : {"12k", "-1", " 7", "lots"}) {
    setenv("KFUSE_DRAW_CACHE_BYTES", bad, 1);
    EXPECT_EQ(Context::cpu().draw_cache_budget(), Context::kDefaultDrawCacheBytes) << bad;
  }
  if (saved)
    setenv("KFUSE_DRAW_CACHE_BYTES", restore.c_str(), 1);
  else
    unsetenv("KFUSE_DRAW_CACHE_BYTES");
}

TEST(Context, MisalignedAllocatorIsRejected) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no usable CUDA device";
  struct Offset final : Allocator {
    std::shared_ptr<Allocator> inner;
    void* allocate(std::size_t bytes, cudaStream s) override {
      return static_cast<char*>(inner->allocate(bytes + 256, s)) + 8;
    }
    void deallocate(void* p, std::size_t bytes, cudaStream s) noexcept override {
      inner->deallocate(static_cast<char*>(p) - 8, bytes + 256, s);
    }
  };
  Context ctx = Context::cuda(0);
  Context plain = Context::cuda(0);
  auto offset = std::make_shared<Offset>();
  offset->inner = std::shared_ptr<Allocator>(&plain.allocator(), [](Allocator*) {});
  ctx.set_allocator(offset);
  TestArray<float> X(Backend::Cuda, uniform<float>(8, 1)), out(Backend::Cuda, nan_filled<float>(1));
  Mmd2Options o;
  expect_error([&] { mmd2(ctx, X.cmatrix(4, 2), X.cmatrix(4, 2), out.vector(), o); },
               Status::InvalidArgument, "aligned");
}

TEST(Views, BuildersAndConstConversion) {
  std::vector<float> a(12);
  MatrixView<float> m = host_matrix(a.data(), 3, 4);
  EXPECT_EQ(m.ld, 4);
  EXPECT_EQ(m.memory, Memory::Host);
  MatrixView<const float> c = m;
  EXPECT_EQ(c.data, a.data());
  m(2, 1) = 5.0f;
  EXPECT_EQ(a[9], 5.0f);
  MatrixView<float> padded = device_matrix(a.data(), 2, 3, 6);
  EXPECT_EQ(padded.ld, 6);
  EXPECT_EQ(padded.memory, Memory::Device);
  EXPECT_EQ(padded.row(1), a.data() + 6);
  VectorView<const float> absent;
  EXPECT_TRUE(absent.absent());
  VectorView<float> v = host_vector(a.data(), 12);
  VectorView<const float> cv = v;
  EXPECT_FALSE(cv.absent());
  EXPECT_EQ(dtype_of<const float>::value, DType::F32);
  EXPECT_EQ(dtype_of<bf16>::value, DType::BF16);
}

TEST(Errors, NamesAndStatus) {
  const Error e(Status::ShapeMismatch, "op: argument 'X': expected 3, got 4");
  EXPECT_EQ(e.status(), Status::ShapeMismatch);
  EXPECT_STREQ(status_name(Status::ShapeMismatch), "ShapeMismatch");
  EXPECT_STREQ(status_name(Status::OutOfMemory), "OutOfMemory");
  EXPECT_STREQ(dtype_name(DType::BF16), "bf16");
  EXPECT_STREQ(memory_name(Memory::Device), "device");
  EXPECT_STREQ(backend_name(Backend::Cuda), "cuda");
  EXPECT_STREQ(precision_name(Precision::TF32), "tf32");
  const std::runtime_error& base = e;  // catchable as a standard exception
  EXPECT_NE(std::string(base.what()).find("got 4"), std::string::npos);
}

TEST(Version, MatchesBuild) {
  EXPECT_EQ(KFUSE_BUILT_WITH_CUDA != 0, built_with_cuda());
  EXPECT_GE(KFUSE_VERSION_MAJOR, 0);
}

}  // namespace
}  // namespace kfuse::test
