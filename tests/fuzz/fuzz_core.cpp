// The fuzzer's buffers and the builder's generators (see fuzz_core.hpp).
#include "fuzz_core.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#if defined(__SANITIZE_ADDRESS__)
#define FUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_ASAN 1
#endif
#endif
#ifdef FUZZ_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace fuzz {

int dtype_size(int dtype) {
  switch (dtype) {
    case KFUSE_F32:
    case KFUSE_I32:
      return 4;
    case KFUSE_F64:
    case KFUSE_I64:
      return 8;
    case KFUSE_BF16:
    case KFUSE_F16:
      return 2;
    default:
      return 0;
  }
}

std::vector<std::int64_t> huge_extents() {
  return {std::int64_t(1) << 62, (std::int64_t(1) << 62) + 1, INT64_MAX,
          INT64_MAX - 1,         std::int64_t(1) << 61,       std::int64_t(3) << 61};
}

namespace {
void free_aligned(unsigned char* p) {
  std::free(p);
}
}  // namespace

Buffer::Buffer(std::size_t bytes)
    : storage_(
          static_cast<unsigned char*>(std::aligned_alloc(64, (bytes + 2 * kGuard + 63) / 64 * 64)),
          free_aligned),
      bytes_(bytes) {
  // Guards hold a pattern a stray write is unlikely to reproduce.
  for (std::size_t i = 0; i < kGuard; ++i) {
    storage_[i] = static_cast<unsigned char>(0xA5 ^ i);
    storage_[kGuard + bytes_ + i] = static_cast<unsigned char>(0x5A ^ i);
  }
  poison_guards();
}

void Buffer::poison_guards() {
#ifdef FUZZ_ASAN
  ASAN_POISON_MEMORY_REGION(storage_.get(), kGuard);
  ASAN_POISON_MEMORY_REGION(storage_.get() + kGuard + bytes_, kGuard);
#endif
}

void Buffer::unpoison_guards() {
#ifdef FUZZ_ASAN
  ASAN_UNPOISON_MEMORY_REGION(storage_.get(), total());
#endif
}

std::int64_t Builder::extent(std::int64_t lo, std::int64_t hi, bool edges) {
  std::vector<std::int64_t> v = {lo, lo + 1, rng_.range(lo, hi), rng_.range(lo, hi)};
  if (edges)
    for (std::int64_t e : {std::int64_t(63), std::int64_t(64), std::int64_t(65)})
      if (e >= lo && e <= hi) v.push_back(e);
  std::int64_t x = rng_.pick(v);
  return x < lo ? lo : (x > hi ? hi : x);
}

namespace {

std::uint16_t to_half(float f) {
  // Normal and zero values only (|f| in [2^-14, 65504] or 0); specials are set directly.
  std::uint32_t b;
  std::memcpy(&b, &f, 4);
  const std::uint16_t sign = static_cast<std::uint16_t>((b >> 16) & 0x8000);
  const int e = static_cast<int>((b >> 23) & 0xFF) - 127 + 15;
  if (f == 0.0f || e <= 0) return sign;
  if (e >= 31) return static_cast<std::uint16_t>(sign | 0x7BFF);
  return static_cast<std::uint16_t>(sign | (e << 10) | ((b >> 13) & 0x3FF));
}

std::uint16_t to_bf16(float f) {
  std::uint32_t b;
  std::memcpy(&b, &f, 4);
  return static_cast<std::uint16_t>(b >> 16);
}

}  // namespace

void Builder::fill_buffer(Buffer& b, int dtype, Fill fill, Role role) {
  const int es = dtype_size(dtype);
  if (es == 0 || b.bytes() == 0) return;
  const std::size_t n = b.bytes() / static_cast<std::size_t>(es);
  unsigned char* p = b.data();
  if (fill == Fill::Zero) {
    std::memset(p, 0, b.bytes());
    return;
  }
  // Inputs sometimes carry NaN, Inf and extreme finite values (outputs are
  // overwritten or scaled by beta, which the options decide).
  const bool specials = s_.nonfinite && role == Role::In && rng_.chance(0.15);
  static const float fspecial[] = {NAN, INFINITY, -INFINITY, 1e30f, -1e30f, 3e38f, 1e-40f, 0.0f};
  static const double dspecial[] = {NAN, INFINITY, -INFINITY, 1e300, -1e300, 1e-310, 1e30, 0.0};
  static const std::uint16_t hspecial[] = {0x7C00, 0xFC00, 0x7E00, 0x7BFF, 0x0001, 0x8000};
  static const std::uint16_t bspecial[] = {0x7F80, 0xFF80, 0x7FC0, 0x7F7F, 0x0001, 0x8000};
  for (std::size_t i = 0; i < n; ++i) {
    const float f = static_cast<float>(4.0 * rng_.uniform() - 2.0);
    const bool special = specials && rng_.chance(0.2);
    switch (dtype) {
      case KFUSE_F32: {
        const float v = special ? fspecial[rng_.below(8)] : f;
        std::memcpy(p + 4 * i, &v, 4);
        break;
      }
      case KFUSE_F64: {
        const double v = special ? dspecial[rng_.below(8)] : static_cast<double>(f);
        std::memcpy(p + 8 * i, &v, 8);
        break;
      }
      case KFUSE_BF16: {
        const std::uint16_t v = special ? bspecial[rng_.below(6)] : to_bf16(f);
        std::memcpy(p + 2 * i, &v, 2);
        break;
      }
      case KFUSE_F16: {
        const std::uint16_t v = special ? hspecial[rng_.below(6)] : to_half(f);
        std::memcpy(p + 2 * i, &v, 2);
        break;
      }
      case KFUSE_I32: {
        const std::int32_t v = static_cast<std::int32_t>(rng_.below(4));
        std::memcpy(p + 4 * i, &v, 4);
        break;
      }
      case KFUSE_I64: {
        const std::int64_t v = rng_.below(4) - 1;
        std::memcpy(p + 8 * i, &v, 8);
        break;
      }
      default:
        break;
    }
  }
}

int Builder::matrix(const std::string& name, Role role, int dtype, std::int64_t rows,
                    std::int64_t cols, Fill fill, bool aligned) {
  const int es = dtype_size(dtype);
  std::int64_t ld = cols;
  const std::int64_t align = aligned ? 16 / es : 1;
  if (cols == 0) {
    ld = rows > 0 ? rng_.pick(std::vector<std::int64_t>{1, 8})
                  : rng_.pick(std::vector<std::int64_t>{0, 8});
    if (aligned) ld = rows > 0 ? align : 0;
  } else if (rows == 1 && !aligned && rng_.chance(0.1)) {
    ld = INT64_MAX;  // valid: one row never steps by ld
  } else if (rng_.chance(0.4)) {
    ld = cols + rng_.range(1, 5);
  }
  if (aligned && ld % align != 0) ld = (ld / align + 1) * align;
  const std::int64_t span = (rows == 0 || cols == 0) ? 0 : ((rows - 1) * ld + cols) * es;
  c_.buffers.push_back(std::make_unique<Buffer>(static_cast<std::size_t>(span)));
  Buffer& b = *c_.buffers.back();
  fill_buffer(b, dtype, fill, role);
  Arg a;
  a.name = name;
  a.role = role;
  a.kind = Kind::Matrix;
  a.m.data = (span == 0 && rng_.chance(0.3)) ? nullptr : b.data();
  a.m.rows = rows;
  a.m.cols = cols;
  a.m.ld = ld;
  set_enum(a.m.dtype, dtype);
  a.m.memory = KFUSE_HOST;
  a.esize = es;
  a.aligned = aligned;
  c_.args.push_back(a);
  return static_cast<int>(c_.args.size() - 1);
}

int Builder::vector(const std::string& name, Role role, int dtype, std::int64_t size, Fill fill) {
  const int es = dtype_size(dtype);
  c_.buffers.push_back(std::make_unique<Buffer>(static_cast<std::size_t>(size * es)));
  Buffer& b = *c_.buffers.back();
  fill_buffer(b, dtype, fill, role);
  Arg a;
  a.name = name;
  a.role = role;
  a.kind = Kind::Vector;
  a.v.data = b.data();
  a.v.size = size;
  set_enum(a.v.dtype, dtype);
  a.v.memory = KFUSE_HOST;
  a.esize = es;
  c_.args.push_back(a);
  return static_cast<int>(c_.args.size() - 1);
}

int Builder::raw(const std::string& name, Role role, std::int64_t bytes) {
  c_.buffers.push_back(std::make_unique<Buffer>(static_cast<std::size_t>(bytes)));
  Buffer& b = *c_.buffers.back();
  for (std::int64_t i = 0; i < bytes; ++i)
    b.data()[i] = static_cast<unsigned char>(rng_.next());
  Arg a;
  a.name = name;
  a.role = role;
  a.kind = Kind::Raw;
  a.raw = b.data();
  a.raw_bytes = bytes;
  a.esize = 1;
  a.mutable_ = false;
  c_.args.push_back(a);
  return static_cast<int>(c_.args.size() - 1);
}

std::int32_t* Builder::i32(int i) {
  Arg& a = c_.args[i];
  return static_cast<std::int32_t*>(
      a.kind == Kind::Matrix ? a.m.data : (a.kind == Kind::Vector ? a.v.data : a.raw));
}

std::int64_t* Builder::i64(int i) {
  Arg& a = c_.args[i];
  return static_cast<std::int64_t*>(a.kind == Kind::Matrix ? a.m.data : a.v.data);
}

void Builder::fill_i32(int i, std::int32_t lo, std::int32_t hi) {
  Arg& a = c_.args[i];
  std::int32_t* p = i32(i);
  if (p == nullptr) return;
  if (a.kind == Kind::Matrix) {
    for (std::int64_t r = 0; r < a.m.rows; ++r)
      for (std::int64_t j = 0; j < a.m.cols; ++j)
        p[r * a.m.ld + j] = static_cast<std::int32_t>(rng_.range(lo, hi));
  } else {
    for (std::int64_t j = 0; j < a.v.size; ++j)
      p[j] = static_cast<std::int32_t>(rng_.range(lo, hi));
  }
}

void Builder::double_option(const std::string& what, double* field, bool (*valid)(double)) {
  const double inf = std::numeric_limits<double>::infinity();
  for (double v :
       {std::nan(""), inf, -inf, 0.0, -0.0, -1.0, 1e-300, 1e300, 5e-324, 1e30, 1e-30, 1.0, 0.5}) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", v);
    c_.option_mutations.push_back(
        {what + " = " + text, [field, v] { *field = v; }, valid != nullptr && !valid(v), -1, true});
  }
}

}  // namespace fuzz
