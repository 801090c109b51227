// The library's settings read from the environment (KFUSE_*), parsed one way.
#pragma once

#include <cstdint>
#include <optional>

namespace kfuse::detail {

// The variable's value when it is a whole number written in decimal digits only
// (past the range: UINT64_MAX); nothing when it is unset, empty or anything else.
std::optional<std::uint64_t> env_whole_number(const char* name);

}  // namespace kfuse::detail
