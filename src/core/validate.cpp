#include "src/core/validate.hpp"

#include <cstdint>
#include <sstream>
#include <string>

#include "src/core/device.hpp"

namespace kfuse::detail {

std::string number(double value) {
  std::ostringstream s;
  s << value;
  return s.str();
}

void argument_error(Status status, const char* op, const std::string& argument,
                    const std::string& what) {
  throw Error(status, std::string(op) + ": argument '" + argument + "': " + what);
}

void Validator::fail(Status status, const std::string& argument, const std::string& what) const {
  argument_error(status, op_, argument, what);
}

void Validator::location(const char* name, Memory memory, const void* data) const {
  const Memory wanted = ctx_.backend() == Backend::Cuda ? Memory::Device : Memory::Host;
  if (memory != wanted)
    fail(Status::MemoryLocation, name,
         std::string("a ") + backend_name(ctx_.backend()) + " context needs " +
             memory_name(wanted) + " memory, got a view marked " + memory_name(memory));
  // The view's own claim is checked against the runtime where it can tell.
  const PointerKind actual = pointer_kind(data);
  if ((wanted == Memory::Device && actual == PointerKind::Host) ||
      (wanted == Memory::Host && actual == PointerKind::Device))
    fail(Status::MemoryLocation, name,
         std::string("the view is marked ") + memory_name(memory) + " but its pointer is " +
             (actual == PointerKind::Host ? "host" : "device") + " memory");
}

bool ranges_overlap(const void* a, std::size_t a_bytes, const void* b, std::size_t b_bytes) {
  if (a == nullptr || b == nullptr || a_bytes == 0 || b_bytes == 0) return false;
  const auto pa = reinterpret_cast<std::uintptr_t>(a);
  const auto pb = reinterpret_cast<std::uintptr_t>(b);
  return pa < pb + b_bytes && pb < pa + a_bytes;
}

}  // namespace kfuse::detail
