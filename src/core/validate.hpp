// Argument checks shared by every operation. They run once, in the host layer,
// before any backend sees the data; a failure throws kfuse::Error whose message
// names the operation, the argument, the expected and the actual value.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "kfuse/context.hpp"
#include "kfuse/error.hpp"
#include "kfuse/precision.hpp"
#include "kfuse/view.hpp"
#include "src/core/checked.hpp"

namespace kfuse::detail {

// The bytes a view spans (0 when empty), for overlap checks. Meaningful for views that
// passed Validator::matrix / vector; for any other view it is 0 rather than a wrapped size.
template <class T>
std::size_t span_bytes(const MatrixView<T>& m) {
  const std::int64_t elements = span_elements(m.rows, m.cols, m.ld).value_or(0);
  return static_cast<std::size_t>(checked_bytes(m.data, elements, sizeof(T)).value_or(0));
}
template <class T>
std::size_t span_bytes(const VectorView<T>& v) {
  return static_cast<std::size_t>(checked_bytes(v.data, v.size, sizeof(T)).value_or(0));
}

// The one form of an argument error: "op: argument 'name': what".
// A double as messages print it (shortest form: "0.5", "1e+300", "nan").
std::string number(double value);

[[noreturn]] void argument_error(Status status, const char* op, const std::string& argument,
                                 const std::string& what);

// Whether [a, a + a_bytes) and [b, b + b_bytes) share a byte (never for a null or empty range).
bool ranges_overlap(const void* a, std::size_t a_bytes, const void* b, std::size_t b_bytes);

// Whether two views share a byte. A and B: MatrixView or VectorView.
template <class A, class B>
bool views_overlap(const A& a, const B& b) {
  return ranges_overlap(a.data, span_bytes(a), b.data, span_bytes(b));
}

class Validator {
 public:
  Validator(const char* op, const Context& ctx) : op_(op), ctx_(ctx) {}

  [[noreturn]] void fail(Status status, const std::string& argument, const std::string& what) const;

  // Extents >= 0, ld >= cols (ld >= 1 when the view is not empty), a span
  // (rows - 1) * ld + cols that fits in 64-bit byte arithmetic (what makes every later
  // `i * ld + j` on a validated view safe), data non-null and memory location matching
  // the context when the view is not empty. An empty view's pointer and memory tag are
  // never looked at: nothing is read through them (a default-constructed one is tagged
  // Host, and a zero-size view may point one past the end of an allocation, which the
  // runtime cannot classify).
  template <class T>
  void matrix(const char* name, const MatrixView<T>& m) const {
    if (m.rows < 0 || m.cols < 0)
      fail(Status::ShapeMismatch, name,
           "expected non-negative extents, got " + dims(m.rows, m.cols));
    if (m.ld < m.cols || (m.rows > 0 && m.ld < 1))
      fail(
          Status::ShapeMismatch, name,
          "expected ld >= cols (" + std::to_string(m.cols) + "), got ld = " + std::to_string(m.ld));
    const std::optional<std::int64_t> elements = span_elements(m.rows, m.cols, m.ld);
    if (!elements || !checked_bytes(m.data, *elements, sizeof(T)))
      fail(Status::InvalidArgument, name,
           "the view's span (rows - 1) * ld + cols overflows the address space: rows = " +
               std::to_string(m.rows) + ", cols = " + std::to_string(m.cols) +
               ", ld = " + std::to_string(m.ld));
    if (m.empty()) return;
    if (m.data == nullptr) fail(Status::InvalidArgument, name, "data is null");
    location(name, m.memory, m.data);
  }

  template <class T>
  void vector(const char* name, const VectorView<T>& v) const {
    if (v.size < 0)
      fail(Status::ShapeMismatch, name, "expected size >= 0, got " + std::to_string(v.size));
    if (!checked_bytes(v.data, v.size, sizeof(T)))
      fail(Status::InvalidArgument, name,
           "the vector's size " + std::to_string(v.size) + " overflows the address space");
    if (v.size == 0) return;
    if (v.data == nullptr) fail(Status::InvalidArgument, name, "data is null");
    location(name, v.memory, v.data);
  }

  void extent(const char* name, const char* what, std::int64_t expected,
              std::int64_t actual) const {
    if (expected != actual)
      fail(Status::ShapeMismatch, name,
           std::string("expected ") + what + " == " + std::to_string(expected) + ", got " +
               std::to_string(actual));
  }
  void at_least(const char* name, const char* what, std::int64_t minimum,
                std::int64_t actual) const {
    if (actual < minimum)
      fail(Status::ShapeMismatch, name,
           std::string("expected ") + what + " >= " + std::to_string(minimum) + ", got " +
               std::to_string(actual));
  }
  void positive_finite(const char* name, double value) const {
    if (!(std::isfinite(value) && value > 0))
      fail(Status::InvalidArgument, name, "expected a finite value > 0, got " + number(value));
  }
  // An enumeration's value within [first, last]: one cast from an integer (the C API,
  // a caller's static_cast) may hold any value of the underlying type. `names` lists
  // the accepted values for the message ("Exact, TF32 or BF16").
  template <class E>
  void enumeration(const std::string& name, E value, E last, const char* names) const {
    const long long v = static_cast<long long>(value);
    if (v < 0 || v > static_cast<long long>(last))
      fail(Status::InvalidArgument, name,
           std::string("expected ") + names + ", got " + std::to_string(v));
  }
  void precision(Precision precision) const {
    enumeration("precision", precision, Precision::BF16, "Exact, TF32 or BF16");
  }

  void finite(const char* name, double value) const {
    if (!std::isfinite(value))
      fail(Status::InvalidArgument, name, "expected a finite value, got " + number(value));
  }

  // An output must not share memory with an input: the backends read inputs while
  // they write outputs. Out and In: MatrixView or VectorView.
  template <class Out, class In>
  void disjoint(const char* out_name, const Out& out, const char* in_name, const In& in) const {
    if (views_overlap(out, in))
      fail(Status::InvalidArgument, out_name,
           std::string("must not overlap input '") + in_name + "'");
  }

  const Context& context() const { return ctx_; }

 private:
  void location(const char* name, Memory memory, const void* data) const;
  static std::string dims(std::int64_t r, std::int64_t c) {
    return std::to_string(r) + " x " + std::to_string(c);
  }

  const char* op_;
  const Context& ctx_;
};

}  // namespace kfuse::detail
