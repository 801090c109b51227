// A seeded random driver of the whole C API (every entry point of kfuse.h and the
// per-family kfuse_*.h), run under AddressSanitizer + UBSan in CI. Deterministic
// for a given --seed; iteration i uses its own generator, so a finding replays
// with --seed S --first i --iterations 1. See fuzz_core.hpp for what is checked.
//
//   fuzz_c_api [--seed N] [--iterations N] [--seconds S] [--first I] [--huge=0|1]
//              [--nonfinite=0|1] [--only SUBSTRING] [--skip SUBSTRING]... [--verbose]
//
// Exit status: 0 when no finding, 1 otherwise; a sanitizer report aborts.
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "fuzz_core.hpp"

namespace fuzz {
namespace {

// Span arithmetic that cannot overflow for any int64 extents (GCC/Clang extension).
__extension__ typedef __int128 i128;

// ------------------------------------------------------------------ byte spans

// The bytes a matrix view spans, in 128-bit arithmetic (no overflow); 0 if empty,
// -1 if an extent is negative or the dtype unknown.
i128 span_bytes(const kfuse_matrix_t& m, int esize) {
  if (m.rows < 0 || m.cols < 0 || esize <= 0) return -1;
  if (m.rows == 0 || m.cols == 0) return 0;
  // (rows - 1) * ld fits 127 bits; times the element size it may not: saturate.
  const i128 elements = (i128)(m.rows - 1) * m.ld + m.cols;
  i128 bytes;
  if (__builtin_mul_overflow(elements, (i128)esize, &bytes)) return ((i128)1) << 120;
  return bytes;
}
i128 span_bytes(const kfuse_vector_t& v, int esize) {
  if (v.size < 0 || esize <= 0) return -1;
  return (i128)v.size * esize;
}
i128 span_bytes(const Arg& a) {
  if (a.kind == Kind::Matrix) return span_bytes(a.m, a.esize);
  if (a.kind == Kind::Vector) return span_bytes(a.v, a.esize);
  return a.raw_bytes;
}
const void* data_of(const Arg& a) {
  return a.kind == Kind::Matrix ? a.m.data : (a.kind == Kind::Vector ? a.v.data : a.raw);
}
bool overlap(const Arg& a, const Arg& b) {
  const i128 sa = span_bytes(a), sb = span_bytes(b);
  if (sa <= 0 || sb <= 0 || data_of(a) == nullptr || data_of(b) == nullptr) return false;
  const i128 pa = (i128) reinterpret_cast<std::uintptr_t>(data_of(a));
  const i128 pb = (i128) reinterpret_cast<std::uintptr_t>(data_of(b));
  return pa < pb + sb && pb < pa + sa;
}
constexpr i128 kMaxSpan = INT64_MAX;

// ------------------------------------------------------------------ mutations

bool has_buffer_of(const Case& c, const Arg& a, i128 bytes) {
  for (const auto& b : c.buffers)
    if (b->data() == data_of(a)) return (i128)b->bytes() >= bytes;
  return false;
}

// One mutation of a matrix or vector argument. Returns false when none applied.
// `touched`: the arguments mutated so far (an alias target counts: moving it after
// would leave the alias over memory no argument holds).
bool mutate_arg(Case& c, int index, Rng& rng, const Settings& s, std::vector<bool>& touched) {
  Arg& a = c.args[index];
  if (!a.mutable_ || a.kind == Kind::Raw || !a.present) return false;
  const bool matrix = a.kind == Kind::Matrix;
  const std::string n = a.name;
  const int kind = static_cast<int>(rng.below(14));
  auto log = [&](const std::string& what) { c.log.push_back(n + ": " + what); };
  auto reject = [&](const std::string& what) {
    log(what);
    c.reject(n + ": " + what);
  };
  std::int64_t& rows = matrix ? a.m.rows : a.v.size;
  std::int64_t& cols = matrix ? a.m.cols : a.v.size;
  void*& data = matrix ? a.m.data : a.v.data;
  switch (kind) {
    case 0:  // NULL descriptor
      if (!a.nullable) return false;
      a.present = false;
      if (a.optional)
        log("NULL (absent)");
      else
        reject("NULL descriptor");
      return true;
    case 1: {  // NULL data
      const bool empty = span_bytes(a) == 0;
      data = nullptr;
      if (empty)
        log("data NULL, empty view");
      else
        reject("data NULL");
      return true;
    }
    case 2: {  // a negative extent
      const std::int64_t v = rng.chance(0.5) ? -1 : INT64_MIN;
      if (rng.chance(0.5) || !matrix)
        rows = v;
      else
        cols = v;
      reject("negative extent " + std::to_string(v));
      return true;
    }
    case 3:  // ld < cols, or ld < 1 with rows
      if (!matrix) return false;
      if (a.m.cols >= 1) {
        a.m.ld = rng.chance(0.5) ? a.m.cols - 1 : -1;
        reject("ld " + std::to_string(a.m.ld) + " < cols " + std::to_string(a.m.cols));
        return true;
      }
      if (a.m.rows >= 1) {
        a.m.ld = 0;
        reject("ld 0 with rows");
        return true;
      }
      return false;
    case 4: {  // dtype outside the enumeration
      const int v = rng.pick(std::vector<int>{-1, 6, 99, 1 << 30});
      set_enum(matrix ? a.m.dtype : a.v.dtype, v);
      a.esize = 0;
      reject("dtype " + std::to_string(v));
      return true;
    }
    case 5: {  // memory location: the device, or outside the enumeration
      const int v = rng.pick(std::vector<int>{KFUSE_DEVICE, -1, 2, 99});
      set_enum(matrix ? a.m.memory : a.v.memory, v);
      // An empty view's location is never looked at (nothing is read through it);
      // a value outside the enumeration is rejected all the same.
      if (v == KFUSE_DEVICE && span_bytes(a) == 0)
        log("memory device, empty view");
      else
        reject("memory " + std::to_string(v));
      return true;
    }
    case 6:
    case 7: {  // an extent off by one where another argument ties it
      const bool r = matrix ? rng.chance(0.5) : true;
      if ((r ? a.free_rows : a.free_cols) || c.extent_changed) return false;
      c.extent_changed = true;
      std::int64_t& e = r ? rows : cols;
      const std::int64_t d = (e == 0 || rng.chance(0.5)) ? 1 : -1;
      e += d;
      if (matrix && a.m.ld < a.m.cols) a.m.ld = a.m.cols;
      reject(std::string(r ? "rows" : "cols") + (d > 0 ? " + 1" : " - 1"));
      return true;
    }
    case 8: {  // a huge extent
      if (!s.huge || c.extent_changed) return false;
      const bool r = matrix ? rng.chance(0.5) : true;
      std::int64_t& e = r ? rows : cols;
      const std::int64_t old = e, v = rng.pick(huge_extents());
      e = v;
      if (matrix && !r && a.m.ld < a.m.cols) a.m.ld = a.m.cols;
      const bool overflow = span_bytes(a) > kMaxSpan;
      // A free extent without overflow is a valid, larger view our small buffer
      // cannot hold: not a test of the library.
      if (!overflow && (r ? a.free_rows : a.free_cols)) {
        e = old;
        return false;
      }
      c.extent_changed = true;
      reject(std::string(r ? "rows" : "cols") + " = " + std::to_string(v) +
             (overflow ? " (span overflows int64)" : ""));
      return true;
    }
    case 9: {  // a huge ld: the span of two rows overflows
      if (!s.huge || !matrix || a.m.rows < 2 || a.m.cols < 1 || a.esize == 0) return false;
      a.m.ld = rng.pick(
          std::vector<std::int64_t>{INT64_MAX, std::int64_t(1) << 62, INT64_MAX / a.esize + 1});
      reject("ld = " + std::to_string(a.m.ld) + " (span overflows int64)");
      return true;
    }
    case 10:
    case 11: {  // an output over an input (or an input over another input)
      std::vector<int> others;
      for (int j = 0; j < static_cast<int>(c.args.size()); ++j)
        if (j != index && c.args[j].role == Role::In && c.args[j].present &&
            data_of(c.args[j]) != nullptr && c.args[j].kind != Kind::Raw)
          others.push_back(j);
      if (others.empty() || data_of(a) == nullptr) return false;
      const int target = rng.pick(others);
      if (touched[target]) return false;
      const Arg& o = c.args[target];
      touched[target] = true;
      const int shift = rng.chance(0.3) ? o.esize : 0;
      if (a.role == Role::Out) {
        void* const old = data;
        data = static_cast<unsigned char*>(const_cast<void*>(data_of(o))) + shift;
        if (overlap(a, o)) {
          reject("aliases input '" + o.name + "'" + (shift ? " + 1 element" : ""));
        } else if (has_buffer_of(c, o, span_bytes(a) + shift)) {
          log("aliases input '" + o.name + "' (no common byte)");
        } else {
          data = old;  // an empty input's buffer cannot hold the output
          return false;
        }
      } else {
        // Inputs may share memory; only where the other buffer holds this view.
        if (!has_buffer_of(c, o, span_bytes(a))) return false;
        data = const_cast<void*>(data_of(o));
        log("shares the buffer of input '" + o.name + "'");
      }
      return true;
    }
    case 12: {  // another valid dtype
      const int old = matrix ? enum_int(a.m.dtype) : enum_int(a.v.dtype);
      const int v = static_cast<int>(rng.below(6));
      if (v == old || dtype_size(v) > a.esize) return false;  // never a wider element
      if (!a.dtype_choice) {
        if (c.dtype_changed) return false;
        c.dtype_changed = true;
      }
      set_enum(matrix ? a.m.dtype : a.v.dtype, v);
      a.esize = dtype_size(v);  // the elements the view now describes (buffer: wide enough)
      if (a.dtype_choice)
        log("dtype " + std::to_string(old) + " -> " + std::to_string(v));
      else
        reject("dtype " + std::to_string(old) + " -> " + std::to_string(v));
      return true;
    }
    default:
      return false;
  }
}

// The field an option mutation changes ("plan.layout.top_k -1" -> "plan.layout.top_k").
std::string field_of(const std::string& what) {
  return what.substr(0, what.find(' '));
}

// 0 to 3 mutations, at most one per argument and per option field (two could cancel).
void mutate(Case& c, Rng& rng, const Settings& s) {
  const double u = rng.uniform();
  const int count = u < 0.3 ? 0 : (u < 0.75 ? 1 : (u < 0.9 ? 2 : 3));
  std::vector<std::string> fields;
  std::vector<bool> touched(c.args.size(), false);
  for (int k = 0, tries = 0; k < count && tries < 20; ++tries) {
    const double w = rng.uniform();
    if (w < 0.02) {
      if (!c.uses_ctx) continue;
      c.ctx = nullptr;
      c.log.push_back("ctx NULL");
      c.reject("ctx NULL");
      ++k;
    } else if (w < 0.04) {
      if (!c.has_options) continue;
      c.null_options = true;
      c.log.push_back("options NULL");
      if (!c.null_options_valid) c.reject("options NULL");
      ++k;
    } else if (w < 0.4 && !c.option_mutations.empty()) {
      const OptionMutation& m = rng.pick(c.option_mutations);
      if (m.exclusive && k > 0) continue;
      const std::string field = field_of(m.what);
      if (std::find(fields.begin(), fields.end(), field) != fields.end()) continue;
      fields.push_back(field);
      m.apply();
      c.log.push_back("option " + m.what);
      if (m.reject) c.reject("option " + m.what, m.arg, m.in_options);
      ++k;
      if (m.exclusive) break;
    } else if (!c.args.empty()) {
      const int i = static_cast<int>(rng.below(static_cast<std::int64_t>(c.args.size())));
      if (touched[i]) continue;
      if (mutate_arg(c, i, rng, s, touched)) {
        touched[i] = true;
        ++k;
      }
    }
  }
}

// ------------------------------------------------------------------ checks

struct Stats {
  std::int64_t iterations = 0, accepted = 0, rejected = 0, findings = 0;
  std::map<std::string, std::int64_t> per_op;
  std::map<std::string, std::int64_t> finding_kinds;
};

std::string lower(std::string s) {
  for (char& ch : s)
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  return s;
}

// The argument a message names ("op: argument 'name': what"), "" if none.
std::string named_argument(const std::string& message) {
  const std::string key = "argument '";
  const std::size_t at = message.find(key);
  if (at == std::string::npos) return "";
  const std::size_t end = message.find('\'', at + key.size());
  if (end == std::string::npos) return "";
  return message.substr(at + key.size(), end - at - key.size());
}

// "sides[1].kernel" -> "sides"; "plan.layout.top_k" -> "plan".
std::string root_of(const std::string& name) {
  const std::size_t end = name.find_first_of(".[");
  return lower(name.substr(0, end));
}

// The flags that select the entry points and generators, for a replay line.
std::string replay_flags;

void report(Stats& stats, const Case& c, std::uint64_t seed, std::int64_t iteration,
            const std::string& kind, const std::string& detail) {
  ++stats.findings;
  const std::int64_t seen = ++stats.finding_kinds[c.op + ": " + kind];
  if (seen > 3) return;  // the first few of each kind in full
  std::fprintf(stderr,
               "FINDING [%s] %s: %s\n  replay: --seed %" PRIu64 " --first %" PRId64
               " --iterations 1%s\n",
               c.op.c_str(), kind.c_str(), detail.c_str(), seed, iteration, replay_flags.c_str());
  for (const auto& l : c.log)
    std::fprintf(stderr, "  mutation: %s\n", l.c_str());
  if (c.log.empty()) std::fprintf(stderr, "  (no mutation: a valid call)\n");
}

struct Snapshot {
  std::vector<std::vector<unsigned char>> buffers;
  std::vector<std::vector<unsigned char>> structs;
};

Snapshot take(Case& c) {
  Snapshot s;
  for (auto& b : c.buffers) {
    b->unpoison_guards();
    s.buffers.emplace_back(b->base(), b->base() + b->total());
    b->poison_guards();
  }
  for (auto& [p, n] : c.struct_outputs) {
    auto* q = static_cast<unsigned char*>(p);
    s.structs.emplace_back(q, q + n);
  }
  return s;
}

// Marks the bytes of buffer b that output views may write.
std::vector<bool> writable(const Case& c, const Buffer& b) {
  std::vector<bool> w(b.total(), false);
  const auto* lo = const_cast<Buffer&>(b).data();
  for (const Arg& a : c.args) {
    if (a.role != Role::Out || !a.present || data_of(a) == nullptr || a.esize <= 0) continue;
    const auto* p = static_cast<const unsigned char*>(data_of(a));
    if (p < lo || p > lo + b.bytes()) continue;
    const std::size_t off = static_cast<std::size_t>(p - lo) + Buffer::kGuard;
    auto mark = [&](i128 from, i128 bytes) {
      for (i128 i = from; i < from + bytes && off + i < w.size(); ++i)
        w[static_cast<std::size_t>(off + i)] = true;
    };
    if (a.kind == Kind::Matrix) {
      if (a.m.rows <= 0 || a.m.cols <= 0 || (i128)a.m.rows * a.m.cols > 100000000) continue;
      for (std::int64_t r = 0; r < a.m.rows; ++r) {
        const i128 start = (i128)r * a.m.ld * a.esize;
        if (start >= (i128)b.total()) break;
        mark(start, (i128)a.m.cols * a.esize);
      }
    } else {
      mark(0, span_bytes(a));
    }
  }
  return w;
}

void check(Stats& stats, Case& c, const Snapshot& before, kfuse_status_t status, std::uint64_t seed,
           std::int64_t iteration) {
  int code;
  std::memcpy(&code, &status, sizeof code);
  const std::string message = kfuse_last_error();
  for (auto& b : c.buffers)
    b->unpoison_guards();
  if (code != KFUSE_SUCCESS) {
    ++stats.rejected;
    if (code < 1 || code > 9)
      report(stats, c, seed, iteration, "status", "unknown status " + std::to_string(code));
    const std::string name = named_argument(message);
    const bool device_status =
        code == KFUSE_NO_DEVICE || code == KFUSE_CUDA_ERROR || code == KFUSE_CUBLAS_ERROR;
    if (device_status || (code == KFUSE_UNSUPPORTED && c.build_may_refuse)) {
      // the device's answer, not an argument's fault
    } else if (name.empty() && code != KFUSE_OUT_OF_MEMORY) {
      report(stats, c, seed, iteration, "message names no argument",
             "status " + std::to_string(code) + ", \"" + message + "\"");
    } else if (name.empty()) {
      report(stats, c, seed, iteration, "out of memory naming no argument", "\"" + message + "\"");
    } else {
      bool known = false;
      for (const auto& n : c.names)
        known = known || lower(n) == root_of(name);
      if (!known)
        report(stats, c, seed, iteration, "message names no argument of the call",
               "\"" + message + "\"");
    }
    for (std::size_t i = 0; i < c.buffers.size(); ++i)
      if (std::memcmp(before.buffers[i].data(), c.buffers[i]->base(), c.buffers[i]->total()) != 0)
        report(stats, c, seed, iteration, "buffer written on rejection",
               "buffer " + std::to_string(i) + ", status " + std::to_string(code) + ", \"" +
                   message + "\"");
    for (std::size_t i = 0; i < c.struct_outputs.size(); ++i)
      if (std::memcmp(before.structs[i].data(), c.struct_outputs[i].first,
                      c.struct_outputs[i].second) != 0)
        report(stats, c, seed, iteration, "output struct written on rejection",
               "\"" + message + "\"");
    return;
  }
  ++stats.accepted;
  const std::vector<std::string> reasons = c.reasons();
  if (!reasons.empty())
    report(stats, c, seed, iteration, "accepted an invalid call", reasons.front());
  for (std::size_t i = 0; i < c.buffers.size(); ++i) {
    const Buffer& b = *c.buffers[i];
    const std::vector<bool> w = writable(c, b);
    const unsigned char* now = c.buffers[i]->base();
    for (std::size_t k = 0; k < b.total(); ++k)
      if (now[k] != before.buffers[i][k] && !w[k]) {
        const bool guard = k < Buffer::kGuard || k >= Buffer::kGuard + b.bytes();
        report(stats, c, seed, iteration,
               guard ? "wrote a guard region" : "wrote outside its output views",
               "buffer " + std::to_string(i) + " byte " + std::to_string(k));
        break;
      }
  }
}

// ------------------------------------------------------------------ the driver

struct Options {
  std::uint64_t seed = 1;
  std::int64_t iterations = -1;
  double seconds = -1;
  std::int64_t first = 0;
  std::string only;
  std::vector<std::string> skip;
  Settings settings;
};

bool flag(const char* arg, const char* name, bool* out) {
  const std::size_t n = std::strlen(name);
  if (std::strncmp(arg, name, n) != 0) return false;
  if (arg[n] == '\0') {
    *out = true;
    return true;
  }
  if (arg[n] != '=') return false;
  *out = std::strcmp(arg + n + 1, "0") != 0 && std::strcmp(arg + n + 1, "false") != 0;
  return true;
}

int usage() {
  std::fprintf(stderr,
               "usage: fuzz_c_api [--seed N] [--iterations N] [--seconds S] [--first I]\n"
               "                  [--huge=0|1] [--nonfinite=0|1] [--only OP] [--skip OP]...\n"
               "                  [--verbose]\n");
  return 2;
}

}  // namespace
}  // namespace fuzz

int main(int argc, char** argv) {
  using namespace fuzz;
  Options o;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    const bool has_value = i + 1 < argc;
    if (std::strcmp(a, "--seed") == 0 && has_value)
      o.seed = std::strtoull(argv[++i], nullptr, 0);
    else if (std::strcmp(a, "--iterations") == 0 && has_value)
      o.iterations = std::strtoll(argv[++i], nullptr, 0);
    else if (std::strcmp(a, "--seconds") == 0 && has_value)
      o.seconds = std::strtod(argv[++i], nullptr);
    else if (std::strcmp(a, "--first") == 0 && has_value)
      o.first = std::strtoll(argv[++i], nullptr, 0);
    else if (std::strcmp(a, "--only") == 0 && has_value)
      o.only = argv[++i];
    else if (std::strcmp(a, "--skip") == 0 && has_value)
      o.skip.push_back(argv[++i]);
    else if (flag(a, "--huge", &o.settings.huge) || flag(a, "--nonfinite", &o.settings.nonfinite) ||
             flag(a, "--verbose", &o.settings.verbose))
      continue;
    else
      return usage();
    if (std::strcmp(a, "--only") == 0 || std::strcmp(a, "--skip") == 0)
      replay_flags += std::string(" ") + a + " " + argv[i];
  }
  replay_flags += std::string(" --huge=") + (o.settings.huge ? "1" : "0") +
                  " --nonfinite=" + (o.settings.nonfinite ? "1" : "0");
  if (o.iterations < 0 && o.seconds < 0) o.iterations = 1000;

  std::vector<EntryPoint> entries;
  for (auto family : {context_entry_points, gauss_entry_points, fuse_entry_points, moe_entry_points,
                      contrastive_entry_points})
    for (const EntryPoint& e : family()) {
      bool skipped = false;
      for (const auto& s : o.skip)
        skipped = skipped || std::strstr(e.name, s.c_str()) != nullptr;
      if (!skipped && (o.only.empty() || std::strstr(e.name, o.only.c_str()) != nullptr))
        entries.push_back(e);
    }
  if (entries.empty()) {
    std::fprintf(stderr, "fuzz_c_api: no entry point matches --only %s\n", o.only.c_str());
    return 2;
  }

  kfuse_context_t ctx = nullptr;
  if (kfuse_context_create_cpu(&ctx) != KFUSE_SUCCESS) {
    std::fprintf(stderr, "fuzz_c_api: no CPU context: %s\n", kfuse_last_error());
    return 1;
  }
  Stats stats;
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  for (std::int64_t i = o.first;; ++i) {
    if (o.iterations >= 0 && i - o.first >= o.iterations) break;
    if (o.seconds >= 0 && elapsed() >= o.seconds) break;
    Rng rng(o.seed * 0x9E3779B97F4A7C15ull + static_cast<std::uint64_t>(i));
    const EntryPoint& e = rng.pick(entries);
    Case c;
    c.op = e.name;
    c.ctx = ctx;
    c.names = {"ctx", "options"};
    Builder b(c, rng, o.settings);
    e.make(b);
    if (!c.call) continue;  // the maker checked everything itself
    mutate(c, rng, o.settings);
    if (o.settings.verbose) {
      std::fprintf(stderr, "[%" PRId64 "] %s", i, c.op.c_str());
      for (const auto& l : c.log)
        std::fprintf(stderr, " | %s", l.c_str());
      std::fprintf(stderr, "\n");
    }
    const Snapshot before = take(c);
    const kfuse_status_t status = c.call();
    check(stats, c, before, status, o.seed, i);
    ++stats.iterations;
    ++stats.per_op[c.op];
  }
  kfuse_context_destroy(ctx);
  if (o.settings.verbose)
    for (const auto& [op, n] : stats.per_op)
      std::fprintf(stderr, "  %-40s %" PRId64 "\n", op.c_str(), n);
  for (const auto& [kind, n] : stats.finding_kinds)
    std::fprintf(stderr, "  finding: %s (%" PRId64 "x)\n", kind.c_str(), n);
  std::printf("fuzz_c_api: %" PRId64 " calls over %zu entry points (seed %" PRIu64
              ", huge %s, nonfinite %s) in %.1f s: %" PRId64 " accepted, %" PRId64
              " rejected, %" PRId64 " findings\n",
              stats.iterations, entries.size(), o.seed, o.settings.huge ? "on" : "off",
              o.settings.nonfinite ? "on" : "off", elapsed(), stats.accepted, stats.rejected,
              stats.findings);
  return stats.findings == 0 ? 0 : 1;
}
