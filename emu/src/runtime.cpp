// The CUDA runtime API of the emulated device (the subset kfuse and its tests call).
//
// Streams as on a GPU: launches, copies, memsets and stream-ordered frees are queued
// per stream and run, in stream order, only when the host synchronises (stream, event
// or device synchronize, a blocking copy). The legacy default stream waits for, and
// is waited for by, every blocking stream; a cudaStreamNonBlocking stream does
// neither. A cudaMemcpy from pageable host memory to the device returns once the
// source is staged, before the copy lands (as the driver may), so host code that
// relies on it being ordered before a non-blocking stream's work fails here.
//
// Device memory lives on the host heap, registered so that cudaPointerGetAttributes
// tells device from host; fresh allocations hold a signalling-NaN pattern; freeing
// returns the memory to the heap (AddressSanitizer then reports a use after free).
#include <cuda_runtime_api.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "emulator.hpp"
#include "kfuse_emu/launch.hpp"
#include "kfuse_emu/stream.hpp"

namespace {

struct Op {
  std::function<cudaError_t(std::string*)> work;
  std::vector<std::shared_ptr<Op>> deps;
  bool done = false;
};

}  // namespace

struct CUstream_st {
  bool blocking = true;  // synchronises with the legacy default stream
  bool legacy = false;
  std::shared_ptr<Op> last;
};

struct CUevent_st {
  std::shared_ptr<Op> op;
};

namespace kfuse::emu {

namespace {
Settings& mutable_settings() {
  static Settings s = [] {
    Settings r;
    if (const char* o = std::getenv("KFUSE_EMU_ORDER")) {
      const std::string v(o);
      if (v == "reverse") {
        r.order = Order::Reverse;
      } else if (v.rfind("random", 0) == 0) {
        r.order = Order::Random;
        if (v.size() > 7 && v[6] == ':') r.seed = std::strtoull(v.c_str() + 7, nullptr, 10);
      } else if (v != "forward" && !v.empty()) {
        std::fprintf(stderr, "KFUSE_EMU_ORDER=%s: expected forward, reverse or random[:seed]\n", o);
        std::abort();
      }
    }
    if (const char* n = std::getenv("KFUSE_EMU_SMS")) r.sms = std::max(1, std::atoi(n));
    const unsigned cores = std::thread::hardware_concurrency();
    r.workers = cores == 0 ? 1 : static_cast<int>(cores);
    if (const char* n = std::getenv("KFUSE_EMU_THREADS")) r.workers = std::max(1, std::atoi(n));
    return r;
  }();
  return s;
}
}  // namespace

const Settings& settings() {
  return mutable_settings();
}

void set_order_for_testing(Order order, std::uint64_t seed) {
  mutable_settings().order = order;
  mutable_settings().seed = seed;
}

void fill_uninitialised(void* ptr, std::size_t bytes) noexcept {
  // Little-endian: float at offset 0 is 0xffa5ffa5 (a signalling NaN), the double is
  // 0xfff4ffa5ffa5ffa5 (a signalling NaN), every bf16/fp16 is a NaN, every int huge.
  static const unsigned char kPattern[8] = {0xa5, 0xff, 0xa5, 0xff, 0xa5, 0xff, 0xf4, 0xff};
  auto* p = static_cast<unsigned char*>(ptr);
  for (std::size_t i = 0; i < bytes; ++i)
    p[i] = kPattern[i % 8];
}

namespace {

enum class MemoryKind { Device, PinnedHost };
struct Allocation {
  std::size_t bytes;
  MemoryKind kind;
  bool free_queued = false;
};

struct Device {
  std::recursive_mutex mutex;
  CUstream_st legacy;
  std::set<CUstream_st*> streams;            // created and not destroyed
  std::vector<std::shared_ptr<Op>> orphans;  // last work of destroyed streams
  std::map<std::uintptr_t, Allocation> memory;
  std::map<const void*, int> max_dynamic_smem;  // cudaFuncSetAttribute
  std::uint64_t launches = 0;
  Device() { legacy.legacy = true; }
};

Device& device() {
  static Device* d = new Device;  // outlives every static destructor that frees memory
  return *d;
}

thread_local cudaError_t t_last_error = cudaSuccess;
thread_local cudaError_t t_detail_error = cudaSuccess;
thread_local std::string t_detail;

cudaError_t fail(cudaError_t err, const std::string& detail = {}) {
  if (err == cudaSuccess) return err;
  t_last_error = err;
  if (!detail.empty()) {
    t_detail_error = err;
    t_detail = detail;
    std::fprintf(stderr, "kfuse emulated device: %s\n", detail.c_str());
  }
  return err;
}

CUstream_st* resolve(cudaStream_t s) {
  Device& d = device();
  if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) return &d.legacy;
  return d.streams.count(s) != 0 ? s : nullptr;
}

std::shared_ptr<Op> enqueue_op(CUstream_st* s, std::function<cudaError_t(std::string*)> work) {
  Device& d = device();
  auto op = std::make_shared<Op>();
  op->work = std::move(work);
  auto depend = [&op](const std::shared_ptr<Op>& on) {
    if (on && !on->done) op->deps.push_back(on);
  };
  depend(s->last);
  if (s->legacy) {
    for (CUstream_st* other : d.streams)
      if (other->blocking) depend(other->last);
  } else if (s->blocking) {
    depend(d.legacy.last);
  }
  s->last = op;
  return op;
}

// Runs `target` after everything it depends on; returns the first error.
cudaError_t run(const std::shared_ptr<Op>& target) {
  cudaError_t first = cudaSuccess;
  std::string first_message;
  std::vector<std::shared_ptr<Op>> stack{target};
  while (!stack.empty()) {
    std::shared_ptr<Op> op = stack.back();
    if (!op || op->done) {
      stack.pop_back();
      continue;
    }
    bool ready = true;
    for (const auto& dep : op->deps)
      if (!dep->done) {
        stack.push_back(dep);
        ready = false;
      }
    if (!ready) continue;
    stack.pop_back();
    std::string message;
    cudaError_t err;
    try {
      err = op->work(&message);
    } catch (const std::exception& e) {
      err = cudaErrorLaunchFailure;
      message = e.what();
    }
    op->done = true;
    op->work = nullptr;
    op->deps.clear();
    if (err != cudaSuccess && first == cudaSuccess) {
      first = err;
      first_message = message;
    }
  }
  return fail(first, first_message);
}

cudaError_t synchronize_all() {
  Device& d = device();
  cudaError_t first = run(d.legacy.last);
  for (CUstream_st* s : d.streams) {
    const cudaError_t err = run(s->last);
    if (first == cudaSuccess) first = err;
  }
  for (const auto& op : d.orphans) {
    const cudaError_t err = run(op);
    if (first == cudaSuccess) first = err;
  }
  d.orphans.clear();
  return first;
}

// The allocation that holds [p, p + bytes), or null.
const Allocation* find(const void* p, std::size_t bytes, MemoryKind kind) {
  Device& d = device();
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  auto it = d.memory.upper_bound(a);
  if (it == d.memory.begin()) return nullptr;
  --it;
  if (it->second.kind != kind || a < it->first ||
      a - it->first >= std::max<std::size_t>(it->second.bytes, 1))
    return nullptr;
  if (bytes > it->second.bytes - (a - it->first)) return nullptr;
  return &it->second;
}

bool is_device(const void* p) {
  return find(p, 0, MemoryKind::Device) != nullptr;
}
bool is_pinned(const void* p) {
  return find(p, 0, MemoryKind::PinnedHost) != nullptr;
}

cudaError_t allocate(void** ptr, std::size_t bytes, MemoryKind kind) {
  if (ptr == nullptr) return fail(cudaErrorInvalidValue);
  *ptr = nullptr;
  if (bytes == 0) return cudaSuccess;
  void* p = nullptr;
  if (posix_memalign(&p, 256, bytes) != 0) return fail(cudaErrorMemoryAllocation);
  fill_uninitialised(p, bytes);
  device().memory[reinterpret_cast<std::uintptr_t>(p)] = Allocation{bytes, kind};
  *ptr = p;
  return cudaSuccess;
}

void release(void* p) {
  Device& d = device();
  auto it = d.memory.find(reinterpret_cast<std::uintptr_t>(p));
  if (it == d.memory.end()) return;
  fill_uninitialised(p, it->second.bytes);
  d.memory.erase(it);
  std::free(p);  // AddressSanitizer poisons it
}

std::string dims(dim3 v) {
  return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}

// A copy's direction from where its pointers lie (cudaMemcpyDefault), checked against
// the kind the caller gave.
cudaError_t check_copy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind,
                       bool* dst_device, bool* src_device) {
  *dst_device = is_device(dst);
  *src_device = is_device(src);
  const bool want_dst = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool want_src = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (kind != cudaMemcpyDefault && (want_dst != *dst_device || want_src != *src_device))
    return fail(cudaErrorInvalidValue,
                "cudaMemcpy: the kind does not match where the pointers lie");
  if ((*dst_device && find(dst, bytes, MemoryKind::Device) == nullptr) ||
      (*src_device && find(src, bytes, MemoryKind::Device) == nullptr))
    return fail(cudaErrorInvalidValue,
                "cudaMemcpy of " + std::to_string(bytes) + " bytes runs past its allocation");
  return cudaSuccess;
}

// Queues a copy on `s`. A source in pageable host memory is staged now (the caller
// may reuse it at once); every other source is read when the copy runs.
cudaError_t queue_copy(CUstream_st* s, void* dst, const void* src, std::size_t bytes,
                       bool src_device) {
  if (bytes == 0) return cudaSuccess;
  if (!src_device && !is_pinned(src)) {
    auto staged = std::make_shared<std::vector<unsigned char>>(
        static_cast<const unsigned char*>(src), static_cast<const unsigned char*>(src) + bytes);
    enqueue_op(s, [dst, staged](std::string*) {
      std::memcpy(dst, staged->data(), staged->size());
      return cudaSuccess;
    });
  } else {
    enqueue_op(s, [dst, src, bytes](std::string*) {
      std::memmove(dst, src, bytes);
      return cudaSuccess;
    });
  }
  return cudaSuccess;
}

using Lock = std::lock_guard<std::recursive_mutex>;

}  // namespace

cudaError_t enqueue(cudaStream_t stream, std::function<void()> work) {
  Lock lock(device().mutex);
  CUstream_st* s = resolve(stream);
  if (s == nullptr) return fail(cudaErrorInvalidResourceHandle);
  enqueue_op(s, [w = std::move(work)](std::string* message) {
    try {
      w();
    } catch (const std::exception& e) {
      *message = e.what();
      return cudaErrorLaunchFailure;
    }
    return cudaSuccess;
  });
  return cudaSuccess;
}

void submit_launch(const LaunchSpec& spec, std::function<void()> body) {
  Device& d = device();
  Lock lock(d.mutex);
  const dim3 g = spec.grid, b = spec.block;
  const std::string where = std::string(spec.name) + " <<<" + dims(g) + ", " + dims(b) + ", " +
                            std::to_string(spec.dynamic_smem) + ">>> at " + spec.file + ":" +
                            std::to_string(spec.line);
  auto reject = [&](cudaError_t err, const std::string& why) {
    (void)fail(err, "launch of " + where + ": " + why);
  };
  const unsigned long long threads = 1ull * b.x * b.y * b.z;
  if (b.x == 0 || b.y == 0 || b.z == 0 || g.x == 0 || g.y == 0 || g.z == 0)
    return reject(cudaErrorInvalidConfiguration, "a zero grid or block dimension");
  if (threads > kMaxThreadsPerBlock || b.x > 1024 || b.y > 1024 || b.z > 64)
    return reject(cudaErrorInvalidConfiguration,
                  "block of " + std::to_string(threads) +
                      " threads (at most 1024; dimensions at most 1024 x 1024 x 64)");
  if (g.x > 2147483647u || g.y > 65535 || g.z > 65535)
    return reject(cudaErrorInvalidConfiguration,
                  "grid dimension over its limit (x < 2^31, y and z at most 65535)");
  if (spec.dynamic_smem > kMaxSmemPerBlockOptin)
    return reject(cudaErrorInvalidValue, "dynamic shared memory over the SM's 227 KiB");
  if (spec.dynamic_smem > kDefaultSmemPerBlock) {
    auto it = d.max_dynamic_smem.find(spec.kernel);
    if (it == d.max_dynamic_smem.end() || static_cast<std::size_t>(it->second) < spec.dynamic_smem)
      return reject(
          cudaErrorInvalidValue,
          "dynamic shared memory over 48 KiB without "
          "cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize) for this "
          "kernel (" +
              std::string(it == d.max_dynamic_smem.end() ? "never set"
                                                         : "set to " + std::to_string(it->second)) +
              ")");
  }
  CUstream_st* s = resolve(spec.stream);
  if (s == nullptr) return reject(cudaErrorInvalidResourceHandle, "a stream that does not exist");
  log_launch(spec);
  auto grid = std::make_shared<Grid>();
  grid->spec = spec;
  grid->description = where;
  grid->body = std::move(body);
  grid->serial = ++d.launches;
  enqueue_op(s, [grid](std::string* message) { return run_grid(*grid, message); });
}

}  // namespace kfuse::emu

// ====================================================================== the cuda* API
using namespace kfuse::emu;

// ---------------------------------------------------------------- errors
cudaError_t cudaGetLastError() {
  const cudaError_t e = t_last_error;
  t_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() {
  return t_last_error;
}

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
#define KFUSE_EMU_NAME(x) \
  case x:                 \
    return #x;
    KFUSE_EMU_NAME(cudaSuccess)
    KFUSE_EMU_NAME(cudaErrorInvalidValue)
    KFUSE_EMU_NAME(cudaErrorMemoryAllocation)
    KFUSE_EMU_NAME(cudaErrorInitializationError)
    KFUSE_EMU_NAME(cudaErrorInvalidConfiguration)
    KFUSE_EMU_NAME(cudaErrorInvalidDevice)
    KFUSE_EMU_NAME(cudaErrorInvalidDevicePointer)
    KFUSE_EMU_NAME(cudaErrorInvalidResourceHandle)
    KFUSE_EMU_NAME(cudaErrorNotReady)
    KFUSE_EMU_NAME(cudaErrorLaunchFailure)
    KFUSE_EMU_NAME(cudaErrorMisalignedAddress)
    KFUSE_EMU_NAME(cudaErrorIllegalAddress)
    KFUSE_EMU_NAME(cudaErrorNotSupported)
    KFUSE_EMU_NAME(cudaErrorNoDevice)
    KFUSE_EMU_NAME(cudaErrorInsufficientDriver)
#undef KFUSE_EMU_NAME
    default:
      return "cudaErrorUnknown";
  }
}

const char* cudaGetErrorString(cudaError_t e) {
  const char* base = "unknown error";
  switch (e) {
    case cudaSuccess:
      base = "no error";
      break;
    case cudaErrorInvalidValue:
      base = "invalid argument";
      break;
    case cudaErrorMemoryAllocation:
      base = "out of memory";
      break;
    case cudaErrorInvalidConfiguration:
      base = "invalid configuration argument";
      break;
    case cudaErrorInvalidDevice:
      base = "invalid device ordinal";
      break;
    case cudaErrorInvalidResourceHandle:
      base = "invalid resource handle";
      break;
    case cudaErrorNotReady:
      base = "device not ready";
      break;
    case cudaErrorLaunchFailure:
      base = "unspecified launch failure";
      break;
    case cudaErrorMisalignedAddress:
      base = "misaligned address";
      break;
    case cudaErrorIllegalAddress:
      base = "an illegal memory access was encountered";
      break;
    case cudaErrorNotSupported:
      base = "operation not supported";
      break;
    default:
      break;
  }
  // The emulator's diagnosis of the most recent error of this kind, when it has one.
  if (e != cudaSuccess && e == t_detail_error) {
    thread_local std::string text;
    text = std::string(base) + " [emulated device: " + t_detail + "]";
    return text.c_str();
  }
  return base;
}

// ---------------------------------------------------------------- device
cudaError_t cudaGetDeviceCount(int* count) {
  if (count == nullptr) return fail(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* dev) {
  if (dev == nullptr) return fail(cudaErrorInvalidValue);
  *dev = 0;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int dev) {
  return dev == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice);
}
cudaError_t cudaDeviceSynchronize() {
  Lock lock(device().mutex);
  return synchronize_all();
}
cudaError_t cudaDeviceReset() {
  Lock lock(device().mutex);
  return synchronize_all();
}
cudaError_t cudaRuntimeGetVersion(int* v) {
  if (v == nullptr) return fail(cudaErrorInvalidValue);
  *v = CUDART_VERSION;
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* v) {
  if (v == nullptr) return fail(cudaErrorInvalidValue);
  *v = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int dev) {
  if (value == nullptr) return fail(cudaErrorInvalidValue);
  if (dev != 0) return fail(cudaErrorInvalidDevice);
  switch (attr) {
    case cudaDevAttrMultiProcessorCount:
      *value = settings().sms;
      break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
      *value = static_cast<int>(kMaxSmemPerBlockOptin);
      break;
    case cudaDevAttrMaxSharedMemoryPerBlock:
      *value = static_cast<int>(kDefaultSmemPerBlock);
      break;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor:
      *value = 228 * 1024;
      break;
    case cudaDevAttrMaxThreadsPerBlock:
      *value = 1024;
      break;
    case cudaDevAttrMaxThreadsPerMultiProcessor:
      *value = 2048;
      break;
    case cudaDevAttrWarpSize:
      *value = 32;
      break;
    case cudaDevAttrComputeCapabilityMajor:
      *value = 9;
      break;
    case cudaDevAttrComputeCapabilityMinor:
      *value = 0;
      break;
    case cudaDevAttrMaxBlockDimX:
      *value = 1024;
      break;
    case cudaDevAttrMaxBlockDimY:
      *value = 1024;
      break;
    case cudaDevAttrMaxBlockDimZ:
      *value = 64;
      break;
    case cudaDevAttrMaxGridDimX:
      *value = 2147483647;
      break;
    case cudaDevAttrMaxGridDimY:
      *value = 65535;
      break;
    case cudaDevAttrMaxGridDimZ:
      *value = 65535;
      break;
    case cudaDevAttrMaxRegistersPerBlock:
      *value = 65536;
      break;
    case cudaDevAttrL2CacheSize:
      *value = 50 * 1024 * 1024;
      break;
    case cudaDevAttrMemoryPoolsSupported:
      *value = 1;
      break;
    default:
      return fail(cudaErrorNotSupported, "cudaDeviceGetAttribute: attribute " +
                                             std::to_string(static_cast<int>(attr)) +
                                             " is not emulated");
  }
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int dev) {
  if (prop == nullptr) return fail(cudaErrorInvalidValue);
  if (dev != 0) return fail(cudaErrorInvalidDevice);
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof prop->name, "kfuse emulated CUDA device (CPU, H100-like)");
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = settings().sms;
  prop->sharedMemPerBlock = kDefaultSmemPerBlock;
  prop->sharedMemPerBlockOptin = kMaxSmemPerBlockOptin;
  prop->sharedMemPerMultiprocessor = 228 * 1024;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsPerMultiProcessor = 2048;
  prop->warpSize = 32;
  prop->regsPerBlock = 65536;
  prop->maxThreadsDim[0] = 1024;
  prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 2147483647;
  prop->maxGridSize[1] = 65535;
  prop->maxGridSize[2] = 65535;
  prop->totalGlobalMem = static_cast<std::size_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE);
  prop->l2CacheSize = 50 * 1024 * 1024;
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  Lock lock(device().mutex);
  if (func == nullptr) return fail(cudaErrorInvalidDeviceFunction);
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || static_cast<std::size_t>(value) > kMaxSmemPerBlockOptin)
      return fail(cudaErrorInvalidValue, "cudaFuncSetAttribute(MaxDynamicSharedMemorySize, " +
                                             std::to_string(value) + "): over the SM's 227 KiB");
    device().max_dynamic_smem[func] = value;
  }
  return cudaSuccess;
}

// ---------------------------------------------------------------- memory
cudaError_t cudaMalloc(void** ptr, std::size_t bytes) {
  Lock lock(device().mutex);
  return allocate(ptr, bytes, MemoryKind::Device);
}
cudaError_t cudaMallocAsync(void** ptr, std::size_t bytes, cudaStream_t stream) {
  Lock lock(device().mutex);
  if (resolve(stream) == nullptr) return fail(cudaErrorInvalidResourceHandle);
  return allocate(ptr, bytes, MemoryKind::Device);
}
cudaError_t cudaMallocHost(void** ptr, std::size_t bytes) {
  Lock lock(device().mutex);
  return allocate(ptr, bytes, MemoryKind::PinnedHost);
}
cudaError_t cudaHostAlloc(void** ptr, std::size_t bytes, unsigned int) {
  return cudaMallocHost(ptr, bytes);
}
cudaError_t cudaFreeHost(void* ptr) {
  Lock lock(device().mutex);
  if (ptr == nullptr) return cudaSuccess;
  if (!is_pinned(ptr)) return fail(cudaErrorInvalidValue);
  (void)synchronize_all();
  release(ptr);
  return cudaSuccess;
}
cudaError_t cudaFree(void* ptr) {
  Device& d = device();
  Lock lock(d.mutex);
  if (ptr == nullptr) return cudaSuccess;
  auto it = d.memory.find(reinterpret_cast<std::uintptr_t>(ptr));
  if (it == d.memory.end() || it->second.kind != MemoryKind::Device || it->second.free_queued)
    return fail(cudaErrorInvalidValue, "cudaFree of a pointer that is not a live allocation");
  // cudaFree synchronises the device first.
  const cudaError_t err = synchronize_all();
  release(ptr);
  return err;
}
cudaError_t cudaFreeAsync(void* ptr, cudaStream_t stream) {
  Device& d = device();
  Lock lock(d.mutex);
  CUstream_st* s = resolve(stream);
  if (s == nullptr) return fail(cudaErrorInvalidResourceHandle);
  if (ptr == nullptr) return cudaSuccess;
  auto it = d.memory.find(reinterpret_cast<std::uintptr_t>(ptr));
  if (it == d.memory.end() || it->second.kind != MemoryKind::Device || it->second.free_queued)
    return fail(cudaErrorInvalidValue, "cudaFreeAsync of a pointer that is not a live allocation");
  it->second.free_queued = true;
  enqueue_op(s, [ptr](std::string*) {
    release(ptr);
    return cudaSuccess;
  });
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(std::size_t* free_bytes, std::size_t* total) {
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  if (free_bytes) *free_bytes = static_cast<std::size_t>(sysconf(_SC_AVPHYS_PAGES)) * page;
  if (total) *total = static_cast<std::size_t>(sysconf(_SC_PHYS_PAGES)) * page;
  return cudaSuccess;
}

cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* attr, const void* ptr) {
  Lock lock(device().mutex);
  if (attr == nullptr) return fail(cudaErrorInvalidValue);
  *attr = cudaPointerAttributes{};
  attr->device = 0;
  if (is_device(ptr)) {
    attr->type = cudaMemoryTypeDevice;
    attr->devicePointer = const_cast<void*>(ptr);
  } else if (is_pinned(ptr)) {
    attr->type = cudaMemoryTypeHost;
    attr->hostPointer = const_cast<void*>(ptr);
    attr->devicePointer = const_cast<void*>(ptr);
  } else {
    attr->type = cudaMemoryTypeUnregistered;
    attr->device = -2;
  }
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream) {
  Lock lock(device().mutex);
  CUstream_st* s = resolve(stream);
  if (s == nullptr) return fail(cudaErrorInvalidResourceHandle);
  bool dst_device = false, src_device = false;
  if (const cudaError_t err = check_copy(dst, src, bytes, kind, &dst_device, &src_device))
    return err;
  return queue_copy(s, dst, src, bytes, src_device);
}

cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind) {
  Device& d = device();
  Lock lock(d.mutex);
  bool dst_device = false, src_device = false;
  if (const cudaError_t err = check_copy(dst, src, bytes, kind, &dst_device, &src_device))
    return err;
  if (!dst_device && !src_device) {  // host to host: at once
    const cudaError_t err = synchronize_all();
    std::memmove(dst, src, bytes);
    return err;
  }
  if (const cudaError_t err = queue_copy(&d.legacy, dst, src, bytes, src_device)) return err;
  // To the device from pageable memory, and device to device: the call returns before
  // the copy lands. Into host memory: the call returns once the data is there.
  if (dst_device && !(!src_device && is_pinned(src))) return cudaSuccess;
  return run(d.legacy.last);
}

cudaError_t cudaMemsetAsync(void* ptr, int value, std::size_t bytes, cudaStream_t stream) {
  Lock lock(device().mutex);
  CUstream_st* s = resolve(stream);
  if (s == nullptr) return fail(cudaErrorInvalidResourceHandle);
  if (bytes == 0) return cudaSuccess;
  if (find(ptr, bytes, MemoryKind::Device) == nullptr)
    return fail(cudaErrorInvalidValue, "cudaMemset outside a device allocation");
  enqueue_op(s, [ptr, value, bytes](std::string*) {
    std::memset(ptr, value, bytes);
    return cudaSuccess;
  });
  return cudaSuccess;
}
cudaError_t cudaMemset(void* ptr, int value, std::size_t bytes) {
  return cudaMemsetAsync(ptr, value, bytes, nullptr);
}

// ---------------------------------------------------------------- streams
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) {
  Lock lock(device().mutex);
  if (stream == nullptr) return fail(cudaErrorInvalidValue);
  auto* s = new CUstream_st;
  s->blocking = (flags & cudaStreamNonBlocking) == 0;
  device().streams.insert(s);
  *stream = s;
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  return cudaStreamCreateWithFlags(stream, cudaStreamDefault);
}
cudaError_t cudaStreamCreateWithPriority(cudaStream_t* stream, unsigned int flags, int) {
  return cudaStreamCreateWithFlags(stream, flags);
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  Device& d = device();
  Lock lock(d.mutex);
  if (d.streams.erase(stream) == 0) return fail(cudaErrorInvalidResourceHandle);
  // Work already queued still runs (at the next device-wide synchronisation).
  if (stream->last && !stream->last->done) d.orphans.push_back(stream->last);
  delete stream;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  Lock lock(device().mutex);
  CUstream_st* s = resolve(stream);
  if (s == nullptr) return fail(cudaErrorInvalidResourceHandle);
  return run(s->last);
}
cudaError_t cudaStreamQuery(cudaStream_t stream) {
  // Nothing runs on its own here: a query that would poll until done runs the work.
  return cudaStreamSynchronize(stream);
}
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int) {
  Lock lock(device().mutex);
  CUstream_st* s = resolve(stream);
  if (s == nullptr || event == nullptr) return fail(cudaErrorInvalidResourceHandle);
  auto wait = enqueue_op(s, [](std::string*) { return cudaSuccess; });
  if (event->op && !event->op->done) wait->deps.push_back(event->op);
  return cudaSuccess;
}

// ---------------------------------------------------------------- events
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int) {
  if (event == nullptr) return fail(cudaErrorInvalidValue);
  *event = new CUevent_st;
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* event) {
  return cudaEventCreateWithFlags(event, 0);
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  Lock lock(device().mutex);
  CUstream_st* s = resolve(stream);
  if (s == nullptr || event == nullptr) return fail(cudaErrorInvalidResourceHandle);
  event->op = enqueue_op(s, [](std::string*) { return cudaSuccess; });
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  Lock lock(device().mutex);
  if (event == nullptr) return fail(cudaErrorInvalidResourceHandle);
  return run(event->op);
}
cudaError_t cudaEventQuery(cudaEvent_t event) {
  return cudaEventSynchronize(event);
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (ms == nullptr || start == nullptr || end == nullptr) return fail(cudaErrorInvalidValue);
  *ms = 0.0f;  // no timing on the emulated device
  return cudaSuccess;
}
