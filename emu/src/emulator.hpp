// The emulated device's internals shared by its runtime (runtime.cpp: streams,
// memory, the cuda* API) and its executor (grid.cpp: blocks on OS threads, threads
// on fibers, barriers and warp collectives).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <string>

#include "kfuse_emu/launch.hpp"

namespace kfuse::emu {

enum class Order { Forward, Reverse, Random };

// From the environment, read once: KFUSE_EMU_ORDER=forward|reverse|random[:seed],
// KFUSE_EMU_SMS (the device's SM count, default 132), KFUSE_EMU_THREADS (OS threads
// that run blocks, default: the machine's cores).
struct Settings {
  Order order = Order::Forward;
  std::uint64_t seed = 1;
  int sms = 132;
  int workers = 1;
};
const Settings& settings();
// For the emulator's own tests: another thread order from now on.
void set_order_for_testing(Order order, std::uint64_t seed = 1);

// The device's limits (an H100 SXM, sm_90).
constexpr std::size_t kDefaultSmemPerBlock = 48 * 1024;
constexpr std::size_t kMaxSmemPerBlockOptin = 227 * 1024;
constexpr unsigned kMaxThreadsPerBlock = 1024;

// A grid as queued: the kernel body and its configuration.
struct Grid {
  LaunchSpec spec;
  std::string description;  // "kernel <<<grid, block, smem>>> at file:line"
  std::function<void()> body;
  std::uint64_t serial = 0;
};

// Runs every block of the grid; a device fault (a failed check inside the kernel)
// stops it and is returned with its description.
cudaError_t run_grid(const Grid& grid, std::string* message);

// Appends the launch's configuration to KFUSE_EMU_LAUNCH_LOG when set (launch_log.cpp).
void log_launch(const LaunchSpec& spec);

// The byte pattern of fresh device memory and shared memory: a signalling NaN as
// float (low word), double, bf16; a NaN as fp16.
void fill_uninitialised(void* ptr, std::size_t bytes) noexcept;

}  // namespace kfuse::emu
