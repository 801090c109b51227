// kfuse::Context: where and how an operation runs.
//
// Every operation takes a Context first. A Cpu context runs the CPU path on host
// memory; a Cuda context runs the GPU path on device memory, asynchronously on
// the context's stream. The header needs no CUDA headers: the stream and cuBLAS
// handle types are forward-declared and identical to CUDA's own.
#pragma once

#include <cstddef>
#include <memory>

struct CUstream_st;
struct cublasContext;

namespace kfuse {

namespace detail {
struct ContextAccess;  // src/core/context_impl.hpp
}

using cudaStream = CUstream_st*;      // == cudaStream_t
using cublasHandle = cublasContext*;  // == cublasHandle_t

enum class Backend : int { Cpu = 0, Cuda = 1 };

const char* backend_name(Backend backend) noexcept;

// Number of usable CUDA devices: 0 when the library was built without CUDA, when
// no driver is installed, or when the runtime reports no device. Never throws.
int cuda_device_count() noexcept;

// True when this build of kfuse contains the CUDA path.
bool built_with_cuda() noexcept;

// Device memory for workspaces. The default allocator is stream-ordered
// (cudaMallocAsync / cudaFreeAsync on the context's stream); a caller with its own
// pool (PyTorch's caching allocator, RMM, ...) supplies one of these instead.
// allocate() returns memory aligned to at least 256 bytes (as cudaMalloc does:
// kernels use 16-byte vector and tensor-core accesses on workspace) and throws
// kfuse::Error (OutOfMemory) on failure.
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(std::size_t bytes, cudaStream stream) = 0;
  virtual void deallocate(void* ptr, std::size_t bytes, cudaStream stream) noexcept = 0;
};

// Ordering: a Cuda context's operations are queued on its stream and ordered only
// against that stream. Device data a call reads must be complete before the call is
// issued, or be produced by work ordered before it on the same stream; results may be
// read only after synchronize() (or an event recorded on the stream). In particular an
// owned stream is non-blocking: it does not wait for the legacy default stream, so
// data uploaded with a plain cudaMemcpy/cudaMemset (legacy stream; from pageable memory
// it may return before the copy lands) must be synchronised (cudaStreamSynchronize(
// cudaStreamLegacy), cudaDeviceSynchronize) or copied with cudaMemcpyAsync on stream().
//
// Built with KFUSE_CUDA_EMULATION, Context::cuda(0) is an emulated CUDA device that
// runs the kernels on the CPU (emu/; see the README), with these ordering rules.
//
// Threads: a Context is used by one host thread at a time (its cuBLAS handle is
// created on first use, and its stream orders the operations issued to it); give
// each thread its own. Contexts are independent of each other: any number may
// live on one device. The CPU path parallelises each call with OpenMP.
class Context {
 public:
  // The CPU backend. Always available.
  static Context cpu();
  // A CUDA context on `device` with a stream it creates and owns (non-blocking).
  // Throws Error(NoDevice) when no usable device exists.
  static Context cuda(int device = 0);
  // A CUDA context on `device` that borrows the caller's stream (nullptr is the
  // legacy default stream). The caller keeps the stream alive longer than the context.
  static Context cuda(int device, cudaStream stream);
  // Cuda on device 0 when a usable device exists, otherwise Cpu. Never throws for
  // want of a driver.
  static Context best();

  Context(Context&&) noexcept;
  Context& operator=(Context&&) noexcept;
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  ~Context();

  Backend backend() const noexcept;
  int device() const noexcept;         // -1 for Cpu
  cudaStream stream() const noexcept;  // nullptr for Cpu (and for a borrowed default stream)
  bool owns_stream() const noexcept;

  // The cuBLAS handle, created on first use, bound to this context's stream.
  // Throws Error(Unsupported) on a Cpu context.
  cublasHandle cublas();

  // The workspace allocator (Cuda contexts only; throws Unsupported on Cpu).
  void set_allocator(std::shared_ptr<Allocator> allocator);
  Allocator& allocator();

  // Blocks the host until the context's stream has finished. No-op on Cpu.
  void synchronize() const;

  // The draw cache: the random matrices the CPU path draws (rp_fuse's and its
  // backward's U_j, cross_modal_rp's, the Fourier frequencies of rff_fuse and of Rbf
  // sides), kept in host memory, in the layout the
  // CPU path reads, so that a repeated call with the same seed, input slot,
  // distribution, width and l skips the draw. An entry is a pure function of its key
  // (the draw depends on nothing else), so a cached result is bitwise the one a fresh
  // context gives. At most `draw_cache_budget()` bytes are held; past it the least
  // recently used matrices are dropped; a matrix larger than the budget is drawn per
  // call. The default budget is kDefaultDrawCacheBytes, or the environment's
  // KFUSE_DRAW_CACHE_BYTES (a byte count) when a context is created; 0 turns the cache
  // off. The GPU path draws its matrices inside its kernels and uses no draw cache.
  static constexpr std::size_t kDefaultDrawCacheBytes = std::size_t(256) << 20;
  void set_draw_cache_budget(std::size_t bytes);  // drops entries down to it at once
  std::size_t draw_cache_budget() const noexcept;
  std::size_t draw_cache_bytes() const noexcept;  // held now
  void clear_draw_cache() noexcept;

  struct Impl;  // defined in src/, opaque to users

 private:
  friend struct detail::ContextAccess;
  explicit Context(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kfuse
