// kfuse-bench: times every op family at named sizes on the best backend present
// (or the one asked for), prints a table, and writes JSON in the schema the peer
// scripts in bench/peers/ share (see bench/README.md).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "bench.hpp"
#include "kfuse/kfuse.hpp"
// The CPU path's descriptions (internal functions of the library, as in the tests).
#include "src/core/blas.hpp"
#include "src/core/fft.hpp"
#include "src/core/isa.hpp"

namespace kfuse::bench {
namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  std::ostringstream s;
  s.precision(9);
  s << v;
  return s.str();
}

std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

void write_json(const std::string& path, const BackendInfo& info, const Options& options,
                const std::vector<Measurement>& results) {
  std::ofstream f(path);
  f << "{\n  \"schema\": \"kfuse-bench/1\",\n  \"date\": " << json_string(now_utc())
    << ",\n  \"preset\": " << json_string(options.preset == Preset::Full ? "full" : "quick")
    << ",\n  \"machine\": {\"backend\": " << json_string(info.backend)
    << ", \"device\": " << json_string(info.device) << ", \"threads\": " << info.threads
    << ", \"sm_count\": " << info.sm_count << ", \"compute_capability\": "
    << json_string(std::to_string(info.cc_major) + "." + std::to_string(info.cc_minor))
    << ", \"clock_hz\": " << json_number(info.clock_hz)
    << ", \"driver\": " << json_string(info.driver)
    << ", \"cpu_isa\": " << json_string(info.cpu_isa) << ", \"blas\": " << json_string(info.blas)
    << ", \"fft\": " << json_string(info.fft)
    << ", \"kfuse_version\": " << json_string(KFUSE_VERSION_STRING) << "},\n  \"results\": [";
  for (std::size_t k = 0; k < results.size(); ++k) {
    const Measurement& m = results[k];
    const double med = median(m.ms);
    f << (k ? ",\n" : "\n") << "    {\"op\": " << json_string(m.op)
      << ", \"impl\": " << json_string(m.impl) << ", \"backend\": " << json_string(m.backend)
      << ", \"dtype\": " << json_string(m.dtype) << ", \"precision\": " << json_string(m.precision)
      << ", \"case\": " << json_string(m.case_name) << ", \"sizes\": {";
    bool first = true;
    for (const auto& [key, value] : m.sizes) {
      f << (first ? "" : ", ") << json_string(key) << ": " << value;
      first = false;
    }
    const double rate = m.work / (med * 1e-3);
    const double fraction =
        m.roofline_peak > 0 ? (m.roofline_work / (med * 1e-3)) / m.roofline_peak : NAN;
    f << "}, \"runs\": " << m.ms.size() << ", \"median_ms\": " << json_number(med)
      << ", \"min_ms\": " << json_number(*std::min_element(m.ms.begin(), m.ms.end()))
      << ", \"max_ms\": " << json_number(*std::max_element(m.ms.begin(), m.ms.end()))
      << ", \"work\": " << json_number(m.work) << ", \"work_unit\": " << json_string(m.work_unit)
      << ", \"rate_per_s\": " << json_number(rate) << ", \"roofline\": " << json_string(m.roofline)
      << ", \"roofline_fraction\": " << json_number(fraction)
      << ", \"note\": " << json_string(m.note) << "}";
  }
  f << "\n  ]\n}\n";
}

void print_table(const BackendInfo& info, const std::vector<Measurement>& results) {
  std::printf(
      "kfuse-bench on %s (%s%s)\n", info.device.c_str(), info.backend.c_str(),
      info.backend == "cpu" ? (", " + std::to_string(info.threads) + " threads").c_str() : "");
  std::printf("CPU path: %s\nBLAS: %s\nFFT: %s\n", info.cpu_isa.c_str(), info.blas.c_str(),
              info.fft.c_str());
  std::printf("%-14s %-6s %-6s %-6s %24s %11s %11s %14s %9s\n", "op", "case", "prec", "dtype",
              "sizes", "median ms", "min ms", "rate", "roofline");
  for (const Measurement& m : results) {
    std::string sizes;
    for (const auto& [key, value] : m.sizes)
      sizes += (sizes.empty() ? "" : ",") + key + "=" + std::to_string(value);
    const double med = median(m.ms);
    const double rate = m.work / (med * 1e-3);
    char rate_text[32], roof_text[32];
    std::snprintf(rate_text, sizeof rate_text, "%.3g %s/s", rate, m.work_unit.c_str());
    if (m.roofline_peak > 0)
      std::snprintf(roof_text, sizeof roof_text, "%5.1f%% %s",
                    100.0 * (m.roofline_work / (med * 1e-3)) / m.roofline_peak, m.roofline.c_str());
    else
      std::snprintf(roof_text, sizeof roof_text, "n/a");
    std::printf("%-14s %-6s %-6s %-6s %24s %11.3f %11.3f %14s %9s\n", m.op.c_str(),
                m.case_name.c_str(), m.precision.c_str(), m.dtype.c_str(), sizes.c_str(), med,
                *std::min_element(m.ms.begin(), m.ms.end()), rate_text, roof_text);
  }
}

int usage() {
  std::fprintf(stderr,
               "usage: kfuse-bench [--preset quick|full] [--backend auto|cpu|cuda] [--runs N]\n"
               "                   [--warmup N] [--filter SUBSTRING] [--json FILE]\n");
  return 2;
}

}  // namespace
}  // namespace kfuse::bench

int main(int argc, char** argv) {
  using namespace kfuse::bench;
  Options options;
  std::string backend = "auto", json;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("missing value after " + arg);
      return argv[++i];
    };
    try {
      if (arg == "--preset") {
        const std::string p = value();
        if (p != "quick" && p != "full") return usage();
        options.preset = p == "full" ? Preset::Full : Preset::Quick;
      } else if (arg == "--backend") {
        backend = value();
      } else if (arg == "--runs") {
        options.runs = std::max(1, std::stoi(value()));
      } else if (arg == "--warmup") {
        options.warmup = std::max(0, std::stoi(value()));
      } else if (arg == "--filter") {
        options.filter = value();
      } else if (arg == "--json") {
        json = value();
      } else {
        return usage();
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "kfuse-bench: %s\n", e.what());
      return usage();
    }
  }
  try {
    kfuse::Context ctx = backend == "cpu"    ? kfuse::Context::cpu()
                         : backend == "cuda" ? kfuse::Context::cuda(0)
                                             : kfuse::Context::best();
    BackendInfo info = describe(ctx);
    info.cpu_isa = kfuse::cpu::isa_description();
    info.blas = kfuse::cpu::blas_description();
    info.fft = kfuse::cpu::fft_description();
    std::vector<Measurement> results;
    auto add = [&](std::vector<Measurement> family) {
      for (auto& m : family)
        results.push_back(std::move(m));
    };
    add(run_gauss(ctx, info, options));
    add(run_fuse(ctx, info, options));
    add(run_moe(ctx, info, options));
    add(run_contrastive(ctx, info, options));
    print_table(info, results);
    if (!json.empty()) {
      write_json(json, info, options, results);
      std::printf("wrote %s\n", json.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kfuse-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
