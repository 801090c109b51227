// The launch log for the kernels' resource check (tests/resources/kernel_resources.py):
// with KFUSE_EMU_LAUNCH_LOG set to a file, each distinct launch configuration of a
// process is appended to it as "offset threads dynamic-smem parameter-bytes", the offset
// being the kernel's address within its library, which the check turns into the kernel's
// name through the library's symbol table (kernels in anonymous namespaces have no
// dynamic symbol, so dladdr alone cannot name them).
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>
#include <tuple>

#include "emulator.hpp"
#include "kfuse_emu/launch.hpp"

namespace kfuse::emu {

void log_launch(const LaunchSpec& spec) {
  static const char* path = std::getenv("KFUSE_EMU_LAUNCH_LOG");
  if (path == nullptr || *path == '\0') return;
  static std::mutex mutex;
  static std::set<std::tuple<const void*, unsigned long long, std::size_t, std::size_t>> seen;
  const unsigned long long threads = 1ull * spec.block.x * spec.block.y * spec.block.z;
  std::lock_guard<std::mutex> lock(mutex);
  if (!seen.emplace(spec.kernel, threads, spec.dynamic_smem, spec.param_bytes).second) return;
  Dl_info info{};
  if (dladdr(spec.kernel, &info) == 0 || info.dli_fbase == nullptr) return;
  // Only the library's own kernels (a test's kernels live in another object).
  Dl_info self{};
  if (dladdr(reinterpret_cast<const void*>(&log_launch), &self) == 0 ||
      self.dli_fbase != info.dli_fbase)
    return;
  const auto offset = reinterpret_cast<std::uintptr_t>(spec.kernel) -
                      reinterpret_cast<std::uintptr_t>(info.dli_fbase);
  if (std::FILE* f = std::fopen(path, "a")) {
    std::fprintf(f, "%llx %llu %zu %zu\n", static_cast<unsigned long long>(offset), threads,
                 spec.dynamic_smem, spec.param_bytes);
    std::fclose(f);
  }
}

}  // namespace kfuse::emu
