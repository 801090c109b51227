// The C API fuzzer's machinery: a seeded generator, guarded buffers, argument
// descriptors, the mutations every argument is put through, and the checks made
// after every call. Each op family builds its cases in fuzz_<family>.cpp.
//
// A case is a valid call (buffers sized exactly for the views it describes) to
// which 0 to 3 mutations are applied. A mutation that makes the call invalid
// records why the call must be rejected; one that keeps it valid (NaN data, an
// absent optional argument, inputs sharing memory) records nothing. Then:
//   - rejected: a non-success status, a message "op: argument 'name': what" naming
//     an argument of the call, and every byte of every buffer (inputs, outputs,
//     guards) and every C struct it may fill as it was;
//   - accepted: no reason to reject was recorded, inputs and guards untouched, and
//     outputs changed only at their views' elements (not between rows).
// Buffers never hold more than their views need, and their guards are poisoned
// under AddressSanitizer: a view the library wrongly accepts is an out-of-bounds
// access that ASan reports.
#pragma once

#include <kfuse/kfuse.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace fuzz {

struct Settings {
  bool huge = true;       // extents, leading dimensions and sizes near 2^62 and INT64_MAX
  bool nonfinite = true;  // NaN, Inf and extreme values in the data
  bool verbose = false;
};

// splitmix64: small, fast, and the same sequence on every platform.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n), n >= 1.
  std::int64_t below(std::int64_t n) {
    return static_cast<std::int64_t>(next() % std::uint64_t(n));
  }
  std::int64_t range(std::int64_t lo, std::int64_t hi) { return lo + below(hi - lo + 1); }
  bool chance(double p) { return uniform() < p; }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[static_cast<std::size_t>(below(static_cast<std::int64_t>(v.size())))];
  }

 private:
  std::uint64_t state_;
};

// Stores `value` in a C enumeration field without materialising an out-of-range
// C++ enum value (the C API reads such fields as integers; so must we).
template <class E>
void set_enum(E& field, int value) {
  static_assert(sizeof(E) == sizeof(int), "C enumerations are int-sized");
  std::memcpy(&field, &value, sizeof value);
}

// The int stored in a C enumeration field, read without loading the enum type.
template <class E>
int enum_int(const E& field) {
  int v;
  std::memcpy(&v, &field, sizeof v);
  return v;
}

// Bytes per element of a dtype given as an int; 0 for an unknown one.
int dtype_size(int dtype);

// A payload of exactly `bytes` bytes (64-byte aligned) between two guard regions.
class Buffer {
 public:
  static constexpr std::size_t kGuard = 64;
  explicit Buffer(std::size_t bytes);
  unsigned char* data() { return storage_.get() + kGuard; }
  std::size_t bytes() const { return bytes_; }
  std::size_t total() const { return bytes_ + 2 * kGuard; }
  unsigned char* base() { return storage_.get(); }
  void poison_guards();
  void unpoison_guards();

 private:
  std::unique_ptr<unsigned char[], void (*)(unsigned char*)> storage_;
  std::size_t bytes_;
};

enum class Role { In, Out };
enum class Kind { Matrix, Vector, Raw };

// One argument of a call. `present` false passes NULL for the descriptor.
struct Arg {
  std::string name;
  Role role = Role::In;
  Kind kind = Kind::Matrix;
  kfuse_matrix_t m{};
  kfuse_vector_t v{};
  void* raw = nullptr;  // Kind::Raw: a plain pointer (plan storage, host_counts, workspace)
  std::int64_t raw_bytes = 0;
  int esize = 0;  // bytes per element as generated
  bool present = true;
  bool optional = false;   // NULL (or an absent vector) is a valid value
  bool nullable = true;    // false: the descriptor cannot be NULL (an array element)
  bool free_rows = false;  // an extent no other argument or option ties down
  bool free_cols = false;
  bool aligned = false;       // the op requires 16-byte aligned rows (MoE GEMMs)
  bool mutable_ = true;       // false: generic mutations leave it alone
  bool dtype_choice = false;  // another dtype may be valid here (e.g. dA: A's or f32)
};

// An option mutation: `apply` changes the options; `reject` says whether the call
// must then fail.
struct OptionMutation {
  std::string what;
  std::function<void()> apply;
  bool reject;
  int arg = -1;             // the argument whose contents it changes (moot when absent)
  bool in_options = false;  // a field of the options struct (moot when they are NULL)
  bool exclusive = false;   // the case's only mutation (others could restore consistency)
};

// Why a call must be rejected; moot when `arg` is not passed or the options
// struct holding the field is NULL (and NULL means the defaults).
struct Reason {
  std::string why;
  int arg = -1;
  bool in_options = false;
};

struct Case {
  std::string op;
  kfuse_context_t ctx = nullptr;
  std::vector<std::unique_ptr<Buffer>> buffers;
  std::vector<Arg> args;
  std::vector<OptionMutation> option_mutations;
  std::vector<std::string> names;   // argument names a rejection may give (roots)
  std::vector<Reason> must_reject;  // why the call must fail
  std::vector<std::string> log;     // mutations applied
  std::vector<std::pair<void*, std::size_t>> struct_outputs;  // C structs the call fills
  std::function<kfuse_status_t()> call;
  bool null_options = false;
  bool has_options = false;         // the call takes an options pointer (set by opt())
  bool null_options_valid = false;  // NULL options mean the defaults
  bool uses_ctx = true;
  bool extent_changed = false;    // one extent mutation per case (two could agree again)
  bool dtype_changed = false;     // one dtype change per case, for the same reason
  bool build_may_refuse = false;  // Unsupported without an argument (a CPU-only build)

  const kfuse_matrix_t* M(int i) { return args[i].present ? &args[i].m : nullptr; }
  const kfuse_vector_t* V(int i) { return args[i].present ? &args[i].v : nullptr; }
  void* R(int i) { return args[i].present ? args[i].raw : nullptr; }
  template <class O>
  const O* opt(const O& o) const {
    return null_options ? nullptr : &o;
  }
  // Declares that the call passes options through opt().
  void takes_options(bool null_valid = false) {
    has_options = true;
    null_options_valid = null_valid;
  }

  void reject(const std::string& why, int arg = -1, bool in_options = false) {
    must_reject.push_back({why, arg, in_options});
  }
  // The reasons that still hold for the call as it is made.
  std::vector<std::string> reasons() const {
    std::vector<std::string> out;
    for (const Reason& r : must_reject)
      if (!(r.arg >= 0 && !args[r.arg].present) && !(r.in_options && null_options))
        out.push_back(r.why);
    return out;
  }
};

// How a buffer's payload is filled.
enum class Fill { Random, Zero };

// The generator shared by the builders.
class Builder {
 public:
  Builder(Case& c, Rng& rng, const Settings& s) : c_(c), rng_(rng), s_(s) {}
  Rng& rng() { return rng_; }
  const Settings& settings() const { return s_; }

  // A row-major matrix argument, its buffer sized for exactly this view (ld picked
  // here: cols, cols + a few, or for one row anything up to INT64_MAX).
  int matrix(const std::string& name, Role role, int dtype, std::int64_t rows, std::int64_t cols,
             Fill fill = Fill::Random, bool aligned = false);
  int vector(const std::string& name, Role role, int dtype, std::int64_t size,
             Fill fill = Fill::Random);
  int raw(const std::string& name, Role role, std::int64_t bytes);
  // Fills arg i's buffer with int32 values in [lo, hi] / int64 values.
  void fill_i32(int i, std::int32_t lo, std::int32_t hi);
  std::int32_t* i32(int i);
  std::int64_t* i64(int i);

  // A small extent: 0, 1, small, or a tile edge (63, 64, 65) when `edges`.
  std::int64_t extent(std::int64_t lo, std::int64_t hi, bool edges = true);
  // A float option: a valid random value, or (for mutations) an invalid one.
  double finite(double lo, double hi) { return lo + (hi - lo) * rng_.uniform(); }

  // Adds option mutations for a double field with validity predicate `valid`.
  void double_option(const std::string& what, double* field, bool (*valid)(double));
  // Adds option mutations for an enum field with `count` enumerators.
  // With `valid_too`, the valid values as well (where no other check depends on it).
  template <class E>
  void enum_option(const std::string& what, E* field, int count, bool valid_too = true) {
    for (int v : {-1, count, 99, 1 << 30})
      c_.option_mutations.push_back(
          {what + " = " + std::to_string(v), [field, v] { set_enum(*field, v); }, true, -1, true});
    for (int v = 0; valid_too && v < count; ++v)
      c_.option_mutations.push_back(
          {what + " = " + std::to_string(v), [field, v] { set_enum(*field, v); }, false, -1, true});
  }
  // Adds option mutations for an integer field; values outside [lo, hi] must be rejected.
  template <class I>
  void int_option(const std::string& what, I* field, std::int64_t lo, std::int64_t hi,
                  bool huge = false);

  Case& c() { return c_; }

 private:
  void fill_buffer(Buffer& b, int dtype, Fill fill, Role role);
  Case& c_;
  Rng& rng_;
  const Settings& s_;
};

template <class I>
void Builder::int_option(const std::string& what, I* field, std::int64_t lo, std::int64_t hi,
                         bool huge) {
  std::vector<std::int64_t> values = {lo - 1, lo, hi, hi + 1, -1, 0};
  if (huge) {
    values.push_back(std::int64_t(1) << 62);
    values.push_back(INT64_MAX);
    values.push_back(INT64_MIN);
  }
  for (std::int64_t v : values) {
    if (v < static_cast<std::int64_t>(std::numeric_limits<I>::min()) ||
        v > static_cast<std::int64_t>(std::numeric_limits<I>::max()))
      continue;
    c_.option_mutations.push_back({what + " = " + std::to_string(v),
                                   [field, v] { *field = static_cast<I>(v); }, v < lo || v > hi, -1,
                                   true});
  }
}

// The families: each returns a case for one of its entry points, picked by `rng`.
using CaseMaker = void (*)(Builder&);
struct EntryPoint {
  const char* name;
  CaseMaker make;
};
std::vector<EntryPoint> gauss_entry_points();
std::vector<EntryPoint> fuse_entry_points();
std::vector<EntryPoint> moe_entry_points();
std::vector<EntryPoint> contrastive_entry_points();
std::vector<EntryPoint> context_entry_points();

// Huge values for extents: each overflows a byte span with a second row or column.
std::vector<std::int64_t> huge_extents();

}  // namespace fuzz
