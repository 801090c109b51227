#include "src/core/env.hpp"

#include <cstdlib>

namespace kfuse::detail {

std::optional<std::uint64_t> env_whole_number(const char* name) {
  const char* env = std::getenv(name);
  if (env == nullptr || *env == '\0') return std::nullopt;
  for (const char* c = env; *c != '\0'; ++c)
    if (*c < '0' || *c > '9') return std::nullopt;
  return static_cast<std::uint64_t>(std::strtoull(env, nullptr, 10));  // ULLONG_MAX past it
}

}  // namespace kfuse::detail
