// The one static precision switch (FlashAttention's BOOL_SWITCH idea): a run-time
// Precision becomes a template argument, so that a kernel is instantiated once per
// precision it implements and a precision reaches every family the same way. A
// family whose mode also depends on the element type (contrastive: 16-bit inputs use
// tensor cores whatever the precision) maps both through visit_precision once, in its
// launch header, and nowhere else.
#pragma once

#include <type_traits>

#include "kfuse/precision.hpp"

namespace kfuse::detail {

template <Precision P>
using PrecisionTag = std::integral_constant<Precision, P>;

// Calls body(PrecisionTag<P>{}) for the P among Ps equal to `precision`. False, calling
// nothing, when `precision` is none of them (the caller decides whether that is a
// permission declined or an internal error).
template <Precision... Ps, class Body>
bool visit_precision(Precision precision, Body&& body) {
  return ((precision == Ps ? (body(PrecisionTag<Ps>{}), true) : false) || ...);
}

}  // namespace kfuse::detail
