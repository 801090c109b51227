// kfuse-bench's shared pieces: one measured case, backend description, timing,
// and the peak rates behind the roofline fractions.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "kfuse/context.hpp"
#include "kfuse/precision.hpp"

namespace kfuse::bench {

enum class Preset { Quick, Full };

struct Measurement {
  std::string op;  // "gauss_matvec"
  std::string impl = "kfuse";
  std::string backend;    // "cpu" / "cuda"
  std::string dtype;      // "f32"
  std::string precision;  // "exact" / "tf32" / "bf16"
  std::string case_name;  // "d3"
  std::map<std::string, std::int64_t> sizes;
  std::vector<double> ms;    // every timed run
  double work = 0;           // units of work per run
  std::string work_unit;     // "pairs", "flop"
  std::string roofline;      // "exp" / "fp32" / "tf32" / "bf16" / "" (none)
  double roofline_work = 0;  // work counted against the roofline (exp calls, flops)
  double roofline_peak = 0;  // per second; 0 when unknown (the CPU)
  std::string note;
};

struct BackendInfo {
  std::string backend;  // "cpu" / "cuda"
  std::string device;   // model name
  int threads = 0;      // CPU threads (OpenMP) or 0
  int sm_count = 0;
  int cc_major = 0, cc_minor = 0;
  double clock_hz = 0;  // SM clock
  std::int64_t l2_bytes = 0;
  std::string driver;
  // The CPU path (every backend has one): the entry points chosen and the
  // processor's vector extensions, and the BLAS and FFT libraries with their builds.
  std::string cpu_isa, blas, fft;
};

BackendInfo describe(const Context& ctx);

// Times `body` (which enqueues one run's work on ctx): `warmup` untimed runs, then
// `runs` timed ones. On a GPU each run is bracketed by CUDA events on the
// context's stream with the L2 cache flushed before it; on the CPU a steady clock.
// body's argument counts the runs, for rotating inputs.
std::vector<double> time_ms(Context& ctx, const std::function<void(int)>& body, int warmup,
                            int runs);

// Peak rates (per second) of the units a roofline refers to; 0 when unknown.
double peak_exp2_per_s(const BackendInfo& info);
double peak_flop_per_s(const BackendInfo& info, Precision precision);

struct Options {
  Preset preset = Preset::Quick;
  int runs = 10;
  int warmup = 2;
  std::string filter;  // substring of "op/case"
};

// One function per op family: its cases at the preset's sizes on ctx's backend.
std::vector<Measurement> run_gauss(Context& ctx, const BackendInfo& info, const Options& options);
std::vector<Measurement> run_fuse(Context& ctx, const BackendInfo& info, const Options& options);
std::vector<Measurement> run_moe(Context& ctx, const BackendInfo& info, const Options& options);
std::vector<Measurement> run_contrastive(Context& ctx, const BackendInfo& info,
                                         const Options& options);

}  // namespace kfuse::bench
