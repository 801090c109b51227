// The extension module kfuse._kfuse: errors, contexts, workspace, version, and the
// four op families' bindings (bind_<family>.cpp).
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <unordered_map>

#include "arrays.hpp"

namespace kfuse_py {

kfuse::DType dtype_of(const nb::dlpack::dtype& t, const char* op, const char* name) {
  using code = nb::dlpack::dtype_code;
  if (t.lanes == 1) {
    if (t.code == uint8_t(code::Float) && t.bits == 32) return kfuse::DType::F32;
    if (t.code == uint8_t(code::Float) && t.bits == 64) return kfuse::DType::F64;
    if (t.code == uint8_t(code::Float) && t.bits == 16) return kfuse::DType::F16;
    if (t.code == uint8_t(code::Bfloat) && t.bits == 16) return kfuse::DType::BF16;
    if (t.code == uint8_t(code::Int) && t.bits == 32) return kfuse::DType::I32;
    if (t.code == uint8_t(code::Int) && t.bits == 64) return kfuse::DType::I64;
  }
  throw nb::type_error((std::string(op) + ": argument '" + name + "' has a dtype kfuse does not " +
                        "take (DLPack code " + std::to_string(t.code) + ", " +
                        std::to_string(t.bits) + " bits); kfuse takes float32, float64, " +
                        "bfloat16, float16, int32 and int64 (each op a subset)")
                           .c_str());
}

const char* dtype_label(kfuse::DType dtype) {
  switch (dtype) {
    case kfuse::DType::F32:
      return "float32";
    case kfuse::DType::F64:
      return "float64";
    case kfuse::DType::BF16:
      return "bfloat16";
    case kfuse::DType::F16:
      return "float16";
    case kfuse::DType::I32:
      return "int32";
    case kfuse::DType::I64:
      return "int64";
  }
  return "?";
}

void unsupported_dtype(const char* op, const char* name, kfuse::DType got, const char* accepted) {
  throw nb::type_error((std::string(op) + ": argument '" + name + "' has dtype " +
                        dtype_label(got) + ", expected " + accepted)
                           .c_str());
}

void Call::fail_ndim(const char* name, std::size_t got, int want) const {
  throw nb::value_error((prefix(name) + "has " + std::to_string(got) + " dimensions, expected " +
                         std::to_string(want))
                            .c_str());
}

void Call::fail_inner(const char* name, std::int64_t stride) const {
  throw nb::value_error(
      (prefix(name) + "has an inner stride of " + std::to_string(stride) +
       " elements; kfuse takes rows whose elements are contiguous (pass a .contiguous() copy)")
          .c_str());
}

kfuse::Memory Call::locate(int device_type, int device_id, const char* name) {
  kfuse::Memory memory;
  int device = -1;
  switch (device_type) {
    case nb::device::cpu::value:
    case nb::device::cuda_host::value:
      memory = kfuse::Memory::Host;
      break;
    case nb::device::cuda::value:
    case nb::device::cuda_managed::value:
      memory = kfuse::Memory::Device;
      device = device_id;
      break;
    default:
      throw nb::value_error((prefix(name) + "lives on DLPack device type " +
                             std::to_string(device_type) +
                             "; kfuse takes arrays in host memory or on a CUDA device")
                                .c_str());
  }
  if (!seen_) {
    seen_ = true;
    memory_ = memory;
    device_ = device;
    first_ = name;
  } else if (memory != memory_ || device != device_) {
    auto where = [](kfuse::Memory m, int d) {
      return m == kfuse::Memory::Host ? std::string("the host")
                                      : "CUDA device " + std::to_string(d);
    };
    throw nb::value_error((prefix(name) + "is on " + where(memory, device) + " but '" + first_ +
                           "' is on " + where(memory_, device_) +
                           ": every array of a call must be on one device")
                              .c_str());
  }
  return memory;
}

// Workspace from PyTorch's caching allocator: a Python callable (set by kfuse.torch)
// returns a uint8 tensor of the asked size on the device; the tensor is kept alive
// until kfuse frees the block. The allocation is made while the caller's current
// stream is the context's stream, so the caching allocator orders its reuse on it.
class PythonAllocator final : public kfuse::Allocator {
 public:
  PythonAllocator(nb::object callback, int device)
      : callback_(std::move(callback)), device_(device) {}
  ~PythonAllocator() override {
    nb::gil_scoped_acquire gil;
    blocks_.clear();
    callback_.reset();
  }
  void* allocate(std::size_t bytes, kfuse::cudaStream) override {
    nb::gil_scoped_acquire gil;
    nb::object block = callback_(bytes, device_);
    auto ptr = reinterpret_cast<void*>(nb::cast<std::uintptr_t>(block.attr("data_ptr")()));
    blocks_.emplace(ptr, std::move(block));
    return ptr;
  }
  void deallocate(void* ptr, std::size_t, kfuse::cudaStream) noexcept override {
    nb::gil_scoped_acquire gil;
    blocks_.erase(ptr);
  }

 private:
  nb::object callback_;
  int device_;
  std::unordered_map<void*, nb::object> blocks_;
};

namespace {
nb::object& torch_allocator_callback() {
  static nb::object* callback = new nb::object();  // leaked: outlives the interpreter's teardown
  return *callback;
}
}  // namespace

kfuse::Context& Call::context() {
  if (!seen_ || memory_ == kfuse::Memory::Host) {
    thread_local kfuse::Context cpu = kfuse::Context::cpu();
    return cpu;
  }
  // One context per (device, stream, workspace source) and host thread: a context
  // serves one thread at a time, and its cuBLAS handle is made once, not per call.
  using Key = std::tuple<int, std::uintptr_t, bool>;
  // Leaked: a context holding a Python allocator must not be destroyed after the
  // interpreter is gone (thread exit, process exit).
  thread_local auto& contexts = *new std::map<Key, std::unique_ptr<kfuse::Context>>();
  const bool torch_ws = torch_workspace_ && torch_allocator_callback().is_valid();
  auto& slot = contexts[Key{device_, stream_, torch_ws}];
  if (!slot) {
    auto ctx = std::make_unique<kfuse::Context>(
        kfuse::Context::cuda(device_, reinterpret_cast<kfuse::cudaStream>(stream_)));
    if (torch_ws) {
      nb::gil_scoped_acquire gil;
      ctx->set_allocator(std::make_shared<PythonAllocator>(torch_allocator_callback(), device_));
    }
    slot = std::move(ctx);
  }
  return *slot;
}

nb::dict defaults(nb::module_& m, const char* op) {
  nb::dict all = nb::borrow<nb::dict>(m.attr("_defaults"));
  nb::dict d;
  all[op] = d;
  return d;
}

void register_common(nb::module_& m) {
  m.attr("_defaults") = nb::dict();
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const kfuse::Error& e) {
      PyObject* type = PyExc_RuntimeError;
      switch (e.status()) {
        case kfuse::Status::InvalidArgument:
        case kfuse::Status::ShapeMismatch:
        case kfuse::Status::MemoryLocation:
          type = PyExc_ValueError;
          break;
        case kfuse::Status::Unsupported:
          type = PyExc_NotImplementedError;
          break;
        case kfuse::Status::OutOfMemory:
          type = PyExc_MemoryError;
          break;
        default:
          type = PyExc_RuntimeError;
          break;
      }
      PyErr_SetString(type,
                      (std::string(kfuse::status_name(e.status())) + ": " + e.what()).c_str());
    }
  });

  m.def(
      "_set_torch_workspace_allocator",
      [](nb::object callback) { torch_allocator_callback() = std::move(callback); },
      nb::arg("callback").none(),
      "Sets the callable (nbytes, device) -> uint8 tensor that CUDA calls made with "
      "torch_workspace=True take their workspace from (kfuse.torch sets it).");
  m.def("built_with_cuda", &kfuse::built_with_cuda,
        "True when this build of kfuse contains the CUDA path.");
  m.def("cuda_device_count", &kfuse::cuda_device_count,
        "Usable CUDA devices (0 without CUDA in the build, a driver or a device).");

  nb::enum_<kfuse::Precision>(m, "Precision")
      .value("Exact", kfuse::Precision::Exact)
      .value("TF32", kfuse::Precision::TF32)
      .value("BF16", kfuse::Precision::BF16);
}

}  // namespace kfuse_py

NB_MODULE(_kfuse, m) {
  m.doc() = "kfuse's C++ binding; use the functions of the kfuse package instead.";
  m.attr("__version__") = KFUSE_VERSION_STRING;
  kfuse_py::register_common(m);
  kfuse_py::register_gauss(m);
  kfuse_py::register_fuse(m);
  kfuse_py::register_contrastive(m);
  kfuse_py::register_moe(m);
}
