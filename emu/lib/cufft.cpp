// cuFFT for the emulated device: plans made with cufftMakePlanMany64 / cufftMakePlanMany (1D,
// 2D, 3D; the basic and the advanced data layout; batches), executed as R2C, C2R, C2C and their
// double-precision forms, with the real library's contract (declarations from the toolkit's
// cufft.h).
//
// - Unnormalised transforms, forward sign -1. R2C writes the n/2+1 non-redundant outputs of the
//   last dimension; C2R reads only those (the imaginary parts that Hermitian symmetry makes
//   zero, DC and Nyquist, are ignored) and, out of place, overwrites its input afterwards as
//   the real library documents it may ("out-of-place complex-to-real FFT will always overwrite
//   input buffer"): here with NaN, so that a caller that reuses the spectrum fails.
// - Basic layout (inembed or onembed NULL): contiguous, the real side of an in-place R2C/C2R
//   padded to 2 (n/2+1) in the last dimension. Advanced layout: element x of batch b at
//   b * dist + ((x0 * embed[1] + x1) * embed[2] + x2) * stride.
// - Work area: MakePlan reports a nonzero work size. With cufftSetAutoAllocation(plan, 0) an
//   execution before cufftSetWorkArea fails with CUFFT_NO_WORKSPACE; the transform writes the
//   whole work area it was given, so a work area that is too small or already freed shows up
//   under AddressSanitizer.
// - Execution is queued on the plan's stream (cufftSetStream): nothing is transformed before
//   the host synchronises. A plan may be destroyed before its queued transforms run.
// - Arithmetic: in double (radix-2 for powers of two, Bluestein's chirp-z with a radix-2
//   convolution otherwise: O(n log n) for every size), rounded once into the output type.
// Stricter than cuFFT, whose behaviour is undefined there: strides below 1, negative
// distances, and embed sizes below the logical sizes are CUFFT_INVALID_VALUE.
#include <cufft.h>

#include <cmath>
#include <complex>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "kfuse_emu/stream.hpp"

namespace kfuse::emu {
namespace {

using cplx = std::complex<double>;

// exp(sign * 2 pi i num / den), from a long double angle for a correctly rounded table.
cplx unit(long double num, long double den, int sign) {
  const long double angle = 2.0L * 3.141592653589793238462643383279502884L * num / den;
  return cplx(static_cast<double>(std::cos(angle)), static_cast<double>(sign * std::sin(angle)));
}

// In-place radix-2 FFT of size n = twiddle.size() * 2 (forward twiddles exp(-2 pi i k / n)).
void fft_pow2(cplx* x, std::size_t n, const std::vector<cplx>& twiddle, int sign) {
  for (std::size_t i = 1, j = 0; i < n; ++i) {
    std::size_t bit = n >> 1;
    for (; j & bit; bit >>= 1)
      j ^= bit;
    j ^= bit;
    if (i < j) std::swap(x[i], x[j]);
  }
  for (std::size_t len = 2; len <= n; len <<= 1) {
    const std::size_t half = len / 2, step = n / len;
    for (std::size_t start = 0; start < n; start += len)
      for (std::size_t k = 0; k < half; ++k) {
        const cplx w = sign < 0 ? twiddle[k * step] : std::conj(twiddle[k * step]);
        const cplx u = x[start + k], v = x[start + k + half] * w;
        x[start + k] = u + v;
        x[start + k + half] = u - v;
      }
  }
}

std::vector<cplx> twiddles(std::size_t n) {
  std::vector<cplx> t(n / 2);
  for (std::size_t k = 0; k < n / 2; ++k)
    t[k] = unit(static_cast<long double>(k), static_cast<long double>(n), -1);
  return t;
}

// One dimension's unnormalised DFT, any size.
class Dft1d {
 public:
  explicit Dft1d(std::size_t n) : n_(n) {
    if ((n & (n - 1)) == 0) {
      twiddle_ = twiddles(n);
      return;
    }
    // Bluestein: X_k = c_k sum_j (x_j c_j) conj(c_{k-j}), c_k = exp(-pi i k^2 / n), the
    // convolution done with radix-2 FFTs of size m >= 2n - 1.
    m_ = 1;
    while (m_ < 2 * n - 1)
      m_ <<= 1;
    twiddle_ = twiddles(m_);
    chirp_.resize(n);
    for (std::size_t k = 0; k < n; ++k) {
      __extension__ using u128 = unsigned __int128;
      const auto k2 = static_cast<std::uint64_t>(u128(k) * k % (u128(2) * n));  // exact angle
      chirp_[k] = unit(static_cast<long double>(k2), 2.0L * n, -1);
    }
    kernel_.assign(m_, cplx(0.0, 0.0));
    kernel_[0] = std::conj(chirp_[0]);
    for (std::size_t k = 1; k < n; ++k)
      kernel_[k] = kernel_[m_ - k] = std::conj(chirp_[k]);
    fft_pow2(kernel_.data(), m_, twiddle_, -1);
  }

  // x[0..n) in place; sign -1 forward, +1 inverse.
  void run(cplx* x, int sign) const {
    if (n_ == 1) return;
    if (m_ == 0) return fft_pow2(x, n_, twiddle_, sign);
    // The inverse as conj(forward(conj(x))).
    std::vector<cplx> a(m_, cplx(0.0, 0.0));
    for (std::size_t k = 0; k < n_; ++k)
      a[k] = (sign < 0 ? x[k] : std::conj(x[k])) * chirp_[k];
    fft_pow2(a.data(), m_, twiddle_, -1);
    for (std::size_t k = 0; k < m_; ++k)
      a[k] *= kernel_[k];
    fft_pow2(a.data(), m_, twiddle_, +1);
    const double scale = 1.0 / static_cast<double>(m_);
    for (std::size_t k = 0; k < n_; ++k) {
      const cplx y = a[k] * scale * chirp_[k];
      x[k] = sign < 0 ? y : std::conj(y);
    }
  }

 private:
  std::size_t n_;
  std::size_t m_ = 0;  // Bluestein's convolution size; 0 for a power of two
  std::vector<cplx> twiddle_, chirp_, kernel_;
};

enum class Kind { R2C, C2R, C2C };

struct Layout {
  long long embed[3];
  long long stride, dist;
};

// A made plan's geometry and precomputed transforms: immutable, shared with queued work.
struct Geometry {
  cufftType type;
  Kind kind;
  bool fp64;
  int rank;
  long long n[3];
  bool basic;
  Layout in, out;  // advanced layout (basic == false)
  long long batch;
  std::vector<Dft1d> dft;  // one per dimension
};

struct Plan {
  std::shared_ptr<const Geometry> geometry;  // null until made
  bool auto_allocate = true;
  void* work_area = nullptr;
  std::size_t work_size = 0;
  cudaStream_t stream = nullptr;
};

struct Plans {
  std::mutex mutex;
  std::map<cufftHandle, Plan> live;
  cufftHandle next = 1;
};

Plans& plans() {
  static Plans p;
  return p;
}

Kind kind_of(cufftType type) {
  switch (type) {
    case CUFFT_R2C:
    case CUFFT_D2Z:
      return Kind::R2C;
    case CUFFT_C2R:
    case CUFFT_Z2D:
      return Kind::C2R;
    default:
      return Kind::C2C;
  }
}

bool known_type(cufftType type) {
  return type == CUFFT_R2C || type == CUFFT_C2R || type == CUFFT_C2C || type == CUFFT_D2Z ||
         type == CUFFT_Z2D || type == CUFFT_Z2Z;
}

// Logical extent of the last dimension on each side: the complex side of R2C/C2R keeps n/2+1.
long long last_extent(const Geometry& g, bool input) {
  const long long n = g.n[g.rank - 1];
  const bool complex_side = g.kind == Kind::C2C || (g.kind == Kind::R2C) != input;
  return g.kind != Kind::C2C && complex_side ? n / 2 + 1 : n;
}

// The layout an execution uses: the advanced one, or the basic one for this placement.
Layout layout(const Geometry& g, bool input, bool in_place) {
  if (!g.basic) return input ? g.in : g.out;
  Layout l{{1, 1, 1}, 1, 1};
  long long count = 1;
  for (int d = 0; d < g.rank; ++d) {
    long long e = d == g.rank - 1 ? last_extent(g, input) : g.n[d];
    const bool real_side = g.kind != Kind::C2C && (g.kind == Kind::R2C) == input;
    if (d == g.rank - 1 && real_side && in_place) e = 2 * (g.n[d] / 2 + 1);
    l.embed[d] = e;
    count *= e;
  }
  l.dist = count;
  return l;
}

// Offset (in elements) of the logical element with multi-index x in batch entry b.
long long offset(const Layout& l, int rank, const long long* x, long long b) {
  long long linear = x[0];
  for (int d = 1; d < rank; ++d)
    linear = linear * l.embed[d] + x[d];
  return b * l.dist + linear * l.stride;
}

// Calls f(linear index, multi-index) over a box of extents e[0..rank).
template <typename F>
void for_each_index(int rank, const long long* e, F f) {
  long long x[3] = {0, 0, 0};
  long long total = 1;
  for (int d = 0; d < rank; ++d)
    total *= e[d];
  for (long long i = 0; i < total; ++i) {
    f(i, x);
    for (int d = rank - 1; d >= 0; --d) {
      if (++x[d] < e[d]) break;
      x[d] = 0;
    }
  }
}

// Full multi-dimensional DFT of a row-major box of extents g.n, one dimension at a time.
void transform(const Geometry& g, std::vector<cplx>& data, int sign) {
  long long inner = 1;
  for (int d = g.rank - 1; d >= 0; --d) {
    const long long n = g.n[d], outer = static_cast<long long>(data.size()) / (n * inner);
    std::vector<cplx> line(static_cast<std::size_t>(n));
    for (long long o = 0; o < outer; ++o)
      for (long long i = 0; i < inner; ++i) {
        cplx* base = data.data() + o * n * inner + i;
        for (long long k = 0; k < n; ++k)
          line[k] = base[k * inner];
        g.dft[d].run(line.data(), sign);
        for (long long k = 0; k < n; ++k)
          base[k * inner] = line[k];
      }
    inner *= n;
  }
}

template <typename Real>
void execute(const Geometry& g, const void* in_ptr, void* out_ptr, int sign, void* work,
             std::size_t work_size) {
  if (work != nullptr) std::memset(work, 0, work_size);  // the work area is really used
  const bool in_place = in_ptr == out_ptr;
  const Layout li = layout(g, true, in_place), lo = layout(g, false, in_place);
  const auto* in = static_cast<const Real*>(in_ptr);
  auto* out = static_cast<Real*>(out_ptr);
  long long full[3], in_box[3], out_box[3];
  for (int d = 0; d < g.rank; ++d)
    full[d] = in_box[d] = out_box[d] = g.n[d];
  in_box[g.rank - 1] = last_extent(g, true);
  out_box[g.rank - 1] = last_extent(g, false);
  const long long last = g.n[g.rank - 1];
  std::vector<cplx> data;
  for (long long b = 0; b < g.batch; ++b) {
    long long count = 1;
    for (int d = 0; d < g.rank; ++d)
      count *= full[d];
    data.assign(static_cast<std::size_t>(count), cplx(0.0, 0.0));
    // Gather: real values, or complex ones (C2R: the stored half, then the Hermitian rest).
    for_each_index(g.rank, in_box, [&](long long, const long long* x) {
      long long at = 0;
      for (int d = 0; d < g.rank; ++d)
        at = at * full[d] + x[d];
      const long long o = offset(li, g.rank, x, b);
      data[at] = g.kind == Kind::R2C ? cplx(in[o], 0.0) : cplx(in[2 * o], in[2 * o + 1]);
    });
    if (g.kind == Kind::C2R) {
      for_each_index(g.rank, full, [&](long long at, const long long* x) {
        if (x[g.rank - 1] <= last / 2) return;
        long long mirror = 0;  // conj of the element at -x (mod n)
        for (int d = 0; d < g.rank; ++d)
          mirror = mirror * full[d] + (x[d] == 0 ? 0 : full[d] - x[d]);
        data[at] = std::conj(data[mirror]);
      });
    }
    transform(g, data, g.kind == Kind::C2C ? sign : (g.kind == Kind::R2C ? -1 : +1));
    if (g.kind == Kind::C2R && !in_place) {
      // cuFFT's documented right to overwrite the input of an out-of-place C2R.
      const Real nan = std::numeric_limits<Real>::quiet_NaN();
      Real* scribble = const_cast<Real*>(in);
      for_each_index(g.rank, in_box, [&](long long, const long long* x) {
        const long long o = offset(li, g.rank, x, b);
        scribble[2 * o] = scribble[2 * o + 1] = nan;
      });
    }
    for_each_index(g.rank, out_box, [&](long long, const long long* x) {
      long long at = 0;
      for (int d = 0; d < g.rank; ++d)
        at = at * full[d] + x[d];
      const long long o = offset(lo, g.rank, x, b);
      if (g.kind == Kind::C2R) {
        out[o] = static_cast<Real>(data[at].real());
      } else {
        out[2 * o] = static_cast<Real>(data[at].real());
        out[2 * o + 1] = static_cast<Real>(data[at].imag());
      }
    });
  }
}

cufftResult make_plan(cufftHandle handle, int rank, const long long* n, const long long* inembed,
                      long long istride, long long idist, const long long* onembed,
                      long long ostride, long long odist, cufftType type, long long batch,
                      std::size_t* work_size) {
  Plans& p = plans();
  {
    std::lock_guard<std::mutex> lock(p.mutex);
    if (p.live.count(handle) == 0) return CUFFT_INVALID_PLAN;
  }
  if (rank < 1 || rank > 3) return CUFFT_INVALID_SIZE;
  if (n == nullptr) return CUFFT_INVALID_VALUE;
  if (!known_type(type)) return CUFFT_INVALID_TYPE;
  auto g = std::make_shared<Geometry>();
  g->type = type;
  g->kind = kind_of(type);
  g->fp64 = type == CUFFT_D2Z || type == CUFFT_Z2D || type == CUFFT_Z2Z;
  g->rank = rank;
  long long count = 1;
  for (int d = 0; d < rank; ++d) {
    if (n[d] < 1) return CUFFT_INVALID_SIZE;
    g->n[d] = n[d];
    count *= n[d];
  }
  if (batch < 1) return CUFFT_INVALID_SIZE;
  g->batch = batch;
  g->basic = inembed == nullptr || onembed == nullptr;
  if (!g->basic) {
    if (istride < 1 || ostride < 1 || idist < 0 || odist < 0) return CUFFT_INVALID_VALUE;
    g->in = Layout{{1, 1, 1}, istride, idist};
    g->out = Layout{{1, 1, 1}, ostride, odist};
    for (int d = 1; d < rank; ++d) {
      const long long need_in = d == rank - 1 ? last_extent(*g, true) : n[d];
      const long long need_out = d == rank - 1 ? last_extent(*g, false) : n[d];
      if (inembed[d] < need_in || onembed[d] < need_out) return CUFFT_INVALID_VALUE;
      g->in.embed[d] = inembed[d];
      g->out.embed[d] = onembed[d];
    }
  }
  for (int d = 0; d < rank; ++d)
    g->dft.emplace_back(static_cast<std::size_t>(n[d]));
  // A scratch copy of one transform, as a real plan would ask for something of that order.
  const std::size_t bytes = static_cast<std::size_t>(count) *
                            (g->fp64 ? sizeof(cufftDoubleComplex) : sizeof(cufftComplex));
  std::lock_guard<std::mutex> lock(p.mutex);
  auto it = p.live.find(handle);
  if (it == p.live.end()) return CUFFT_INVALID_PLAN;
  it->second.geometry = std::move(g);
  it->second.work_size = bytes;
  if (work_size != nullptr) *work_size = bytes;
  return CUFFT_SUCCESS;
}

cufftResult exec(cufftHandle handle, Kind kind, bool fp64, const void* in, void* out, int sign) {
  Plan plan;
  {
    Plans& p = plans();
    std::lock_guard<std::mutex> lock(p.mutex);
    auto it = p.live.find(handle);
    if (it == p.live.end()) return CUFFT_INVALID_PLAN;
    plan = it->second;
  }
  // Not made, or made for another transform.
  if (!plan.geometry || plan.geometry->kind != kind || plan.geometry->fp64 != fp64)
    return CUFFT_INVALID_PLAN;
  if (in == nullptr || out == nullptr) return CUFFT_INVALID_VALUE;
  if (kind == Kind::C2C && sign != CUFFT_FORWARD && sign != CUFFT_INVERSE)
    return CUFFT_INVALID_VALUE;
  void* work = nullptr;
  if (!plan.auto_allocate) {
    if (plan.work_area == nullptr) return CUFFT_NO_WORKSPACE;
    work = plan.work_area;
  }
  std::shared_ptr<const Geometry> g = plan.geometry;
  const std::size_t work_size = plan.work_size;
  const cudaError_t e = enqueue(plan.stream, [=] {
    if (fp64)
      execute<double>(*g, in, out, sign, work, work_size);
    else
      execute<float>(*g, in, out, sign, work, work_size);
  });
  return e == cudaSuccess ? CUFFT_SUCCESS : CUFFT_EXEC_FAILED;
}

template <typename F>
cufftResult with_plan(cufftHandle handle, F f) {
  Plans& p = plans();
  std::lock_guard<std::mutex> lock(p.mutex);
  auto it = p.live.find(handle);
  if (it == p.live.end()) return CUFFT_INVALID_PLAN;
  f(it->second);
  return CUFFT_SUCCESS;
}

}  // namespace
}  // namespace kfuse::emu

using kfuse::emu::Kind;

extern "C" {

cufftResult CUFFTAPI cufftCreate(cufftHandle* handle) {
  if (handle == nullptr) return CUFFT_INVALID_VALUE;
  auto& p = kfuse::emu::plans();
  std::lock_guard<std::mutex> lock(p.mutex);
  *handle = p.next++;  // never 0 or CUFFT_PLAN_NULL
  p.live.emplace(*handle, kfuse::emu::Plan{});
  return CUFFT_SUCCESS;
}

cufftResult CUFFTAPI cufftMakePlanMany64(cufftHandle plan, int rank, long long int* n,
                                         long long int* inembed, long long int istride,
                                         long long int idist, long long int* onembed,
                                         long long int ostride, long long int odist, cufftType type,
                                         long long int batch, size_t* workSize) {
  return kfuse::emu::make_plan(plan, rank, n, inembed, istride, idist, onembed, ostride, odist,
                               type, batch, workSize);
}

cufftResult CUFFTAPI cufftMakePlanMany(cufftHandle plan, int rank, int* n, int* inembed,
                                       int istride, int idist, int* onembed, int ostride, int odist,
                                       cufftType type, int batch, size_t* workSize) {
  if (rank < 1 || rank > 3) return CUFFT_INVALID_SIZE;
  if (n == nullptr) return CUFFT_INVALID_VALUE;
  long long n64[3] = {}, in64[3] = {}, on64[3] = {};
  for (int d = 0; d < rank; ++d) {
    n64[d] = n[d];
    if (inembed != nullptr) in64[d] = inembed[d];
    if (onembed != nullptr) on64[d] = onembed[d];
  }
  return kfuse::emu::make_plan(plan, rank, n64, inembed ? in64 : nullptr, istride, idist,
                               onembed ? on64 : nullptr, ostride, odist, type, batch, workSize);
}

cufftResult CUFFTAPI cufftMakePlan1d(cufftHandle plan, int nx, cufftType type, int batch,
                                     size_t* workSize) {
  long long n = nx;
  return kfuse::emu::make_plan(plan, 1, &n, nullptr, 1, 0, nullptr, 1, 0, type, batch, workSize);
}

cufftResult CUFFTAPI cufftGetSize(cufftHandle handle, size_t* workSize) {
  if (workSize == nullptr) return CUFFT_INVALID_VALUE;
  return kfuse::emu::with_plan(handle, [&](kfuse::emu::Plan& p) { *workSize = p.work_size; });
}

cufftResult CUFFTAPI cufftSetAutoAllocation(cufftHandle plan, int autoAllocate) {
  return kfuse::emu::with_plan(plan,
                               [&](kfuse::emu::Plan& p) { p.auto_allocate = autoAllocate != 0; });
}

cufftResult CUFFTAPI cufftSetWorkArea(cufftHandle plan, void* workArea) {
  return kfuse::emu::with_plan(plan, [&](kfuse::emu::Plan& p) { p.work_area = workArea; });
}

cufftResult CUFFTAPI cufftSetStream(cufftHandle plan, cudaStream_t stream) {
  return kfuse::emu::with_plan(plan, [&](kfuse::emu::Plan& p) { p.stream = stream; });
}

cufftResult CUFFTAPI cufftDestroy(cufftHandle plan) {
  auto& p = kfuse::emu::plans();
  std::lock_guard<std::mutex> lock(p.mutex);
  // Queued transforms hold their own reference to the plan's geometry.
  return p.live.erase(plan) != 0 ? CUFFT_SUCCESS : CUFFT_INVALID_PLAN;
}

cufftResult CUFFTAPI cufftExecR2C(cufftHandle plan, cufftReal* idata, cufftComplex* odata) {
  return kfuse::emu::exec(plan, Kind::R2C, false, idata, odata, CUFFT_FORWARD);
}

cufftResult CUFFTAPI cufftExecC2R(cufftHandle plan, cufftComplex* idata, cufftReal* odata) {
  return kfuse::emu::exec(plan, Kind::C2R, false, idata, odata, CUFFT_INVERSE);
}

cufftResult CUFFTAPI cufftExecC2C(cufftHandle plan, cufftComplex* idata, cufftComplex* odata,
                                  int direction) {
  return kfuse::emu::exec(plan, Kind::C2C, false, idata, odata, direction);
}

cufftResult CUFFTAPI cufftExecD2Z(cufftHandle plan, cufftDoubleReal* idata,
                                  cufftDoubleComplex* odata) {
  return kfuse::emu::exec(plan, Kind::R2C, true, idata, odata, CUFFT_FORWARD);
}

cufftResult CUFFTAPI cufftExecZ2D(cufftHandle plan, cufftDoubleComplex* idata,
                                  cufftDoubleReal* odata) {
  return kfuse::emu::exec(plan, Kind::C2R, true, idata, odata, CUFFT_INVERSE);
}

cufftResult CUFFTAPI cufftExecZ2Z(cufftHandle plan, cufftDoubleComplex* idata,
                                  cufftDoubleComplex* odata, int direction) {
  return kfuse::emu::exec(plan, Kind::C2C, true, idata, odata, direction);
}

}  // extern "C"
