// The CPU paths' choice of instruction set (src/core/isa.hpp). Registered three times
// (tests/CMakeLists.txt): without KFUSE_CPU_ISA, with KFUSE_CPU_ISA=avx512 (honoured only
// where the processor has it) and with a value that names no level.
#include "src/core/isa.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace {

using kfuse::cpu::CpuIsa;

const CpuIsa kLevels[] = {CpuIsa::baseline, CpuIsa::avx2, CpuIsa::avx512};

CpuIsa best_supported() {
  CpuIsa best = CpuIsa::baseline;
  for (CpuIsa l : kLevels)
    if (kfuse::cpu::cpu_supports(l)) best = l;
  return best;
}

// The level KFUSE_CPU_ISA names, or nullptr.
const CpuIsa* requested() {
  const char* env = std::getenv("KFUSE_CPU_ISA");
  if (env == nullptr) return nullptr;
  for (const CpuIsa& l : kLevels)
    if (std::strcmp(env, kfuse::cpu::cpu_isa_name(l)) == 0) return &l;
  return nullptr;
}

TEST(CpuIsa, LevelsAreNestedAndBaselineAlwaysRuns) {
  EXPECT_TRUE(kfuse::cpu::cpu_supports(CpuIsa::baseline));
  if (kfuse::cpu::cpu_supports(CpuIsa::avx512)) {
    EXPECT_TRUE(kfuse::cpu::cpu_supports(CpuIsa::avx2));
  }
  EXPECT_STREQ(kfuse::cpu::cpu_isa_name(CpuIsa::baseline), "baseline");
  EXPECT_STREQ(kfuse::cpu::cpu_isa_name(CpuIsa::avx2), "avx2");
  EXPECT_STREQ(kfuse::cpu::cpu_isa_name(CpuIsa::avx512), "avx512");
}

TEST(CpuIsa, ChoosesTheRequestedLevelOnlyWhereSupported) {
  const CpuIsa chosen = kfuse::cpu::cpu_isa();
  EXPECT_TRUE(kfuse::cpu::cpu_supports(chosen));
  const CpuIsa* asked = requested();
  const std::string description = kfuse::cpu::isa_description();
  EXPECT_EQ(description.rfind(std::string(kfuse::cpu::cpu_isa_name(chosen)) + " entry points", 0),
            0u)
      << description;
  if (asked == nullptr) {
    EXPECT_EQ(chosen, best_supported());
    const char* env = std::getenv("KFUSE_CPU_ISA");
    if (env != nullptr && *env != '\0') {
      EXPECT_NE(description.find("names no level"), std::string::npos) << description;
    }
  } else if (kfuse::cpu::cpu_supports(*asked)) {
    EXPECT_EQ(chosen, *asked);
    EXPECT_NE(description.find("forced by KFUSE_CPU_ISA"), std::string::npos) << description;
  } else {
    EXPECT_EQ(chosen, best_supported());
    EXPECT_NE(description.find("not supported by this processor"), std::string::npos)
        << description;
  }
}

TEST(CpuIsa, PickEntryPointFollowsTheChosenLevel) {
  const int picked = kfuse::cpu::pick_entry_point(0, 1, 2);
  EXPECT_EQ(picked, static_cast<int>(kfuse::cpu::cpu_isa()));
}

// A hot loop of the kind the families write: every entry point that this processor
// runs gives the same bits (in-order fma chains, vectorised across independent rows).
KFUSE_CPU_HOT void scaled_rows(const float* x, int n, float s, float* out) {
  for (int i = 0; i < n; ++i)
    out[i] = x[i] * s + 1.0f;
}

TEST(CpuIsa, EntryPointsComputeTheSameBits) {
  using E = kfuse::cpu::IsaEntryPoints<&scaled_rows>;
  float x[67], want[67], got[67];
  for (int i = 0; i < 67; ++i)
    x[i] = 0.37f * static_cast<float>(i) - 11.0f;
  E::baseline(x, 67, 1.0f / 3.0f, want);
  for (int i = 0; i < 67; ++i)
    ASSERT_EQ(want[i], x[i] * (1.0f / 3.0f) + 1.0f);
  auto* const chosen = kfuse::cpu::cpu_entry_point<&scaled_rows>();
  chosen(x, 67, 1.0f / 3.0f, got);
  EXPECT_EQ(std::memcmp(want, got, sizeof(want)), 0);
}

}  // namespace
