// The generic bounded cache behind the draw cache (src/core/lru_cache.hpp): hits,
// least-recently-used eviction within the budget, buffers outliving their entry.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>

#include "src/core/lru_cache.hpp"

namespace kfuse::detail {
namespace {

LruCache::Buffer buffer_of(int value) {
  return std::make_shared<const int>(value);
}
int value_of(const LruCache::Buffer& b) {
  return *std::static_pointer_cast<const int>(b);
}

TEST(LruCache, FindsWhatWasInserted) {
  LruCache cache(100);
  EXPECT_EQ(cache.find("a"), nullptr);
  cache.insert("a", buffer_of(1), 10);
  ASSERT_NE(cache.find("a"), nullptr);
  EXPECT_EQ(value_of(cache.find("a")), 1);
  EXPECT_EQ(cache.bytes(), 10u);
  cache.insert("a", buffer_of(2), 30);  // replaces
  EXPECT_EQ(value_of(cache.find("a")), 2);
  EXPECT_EQ(cache.bytes(), 30u);
  EXPECT_EQ(cache.entries(), 1u);
}

TEST(LruCache, EvictsTheLeastRecentlyUsedWithinTheBudget) {
  LruCache cache(100);
  cache.insert("a", buffer_of(1), 40);
  cache.insert("b", buffer_of(2), 40);
  ASSERT_NE(cache.find("a"), nullptr);  // b is now the least recently used
  cache.insert("c", buffer_of(3), 40);
  EXPECT_NE(cache.find("a"), nullptr);
  EXPECT_EQ(cache.find("b"), nullptr);
  EXPECT_NE(cache.find("c"), nullptr);
  EXPECT_EQ(cache.bytes(), 80u);
  cache.set_budget(50);  // evicts at once: a was used before c
  EXPECT_EQ(cache.find("a"), nullptr);
  EXPECT_NE(cache.find("c"), nullptr);
  EXPECT_EQ(cache.bytes(), 40u);
}

TEST(LruCache, KeepsNothingLargerThanTheBudgetNorAtBudgetZero) {
  LruCache cache(100);
  cache.insert("big", buffer_of(1), 101);
  EXPECT_EQ(cache.find("big"), nullptr);
  EXPECT_EQ(cache.bytes(), 0u);
  cache.insert("a", buffer_of(1), 10);
  cache.set_budget(0);
  EXPECT_EQ(cache.find("a"), nullptr);
  cache.insert("b", buffer_of(2), 1);
  EXPECT_EQ(cache.find("b"), nullptr);
  EXPECT_EQ(cache.entries(), 0u);
}

TEST(LruCache, ABufferOutlivesItsEvictionAndClear) {
  LruCache cache(100);
  cache.insert("a", buffer_of(7), 60);
  const LruCache::Buffer held = cache.find("a");
  cache.insert("b", buffer_of(8), 60);  // evicts a
  EXPECT_EQ(cache.find("a"), nullptr);
  cache.clear();
  EXPECT_EQ(cache.bytes(), 0u);
  EXPECT_EQ(value_of(held), 7);
}

TEST(LruCache, KeysSeparateEveryField) {
  const std::uint64_t seed = 5;
  const std::uint32_t stream = 1;
  const int dist = 0;
  const std::int64_t rows = 3, cols = 4;
  const std::string k = cache_key("t", seed, stream, dist, rows, cols);
  EXPECT_EQ(k, cache_key("t", seed, stream, dist, rows, cols));
  EXPECT_NE(k, cache_key("u", seed, stream, dist, rows, cols));
  EXPECT_NE(k, cache_key("t", seed + 1, stream, dist, rows, cols));
  EXPECT_NE(k, cache_key("t", seed, stream + 1, dist, rows, cols));
  EXPECT_NE(k, cache_key("t", seed, stream, dist + 1, rows, cols));
  EXPECT_NE(k, cache_key("t", seed, stream, dist, rows + 1, cols));
  EXPECT_NE(k, cache_key("t", seed, stream, dist, rows, cols + 1));
  // Swapped values of equal-sized fields differ too (positions, not a sum).
  EXPECT_NE(cache_key("t", rows, cols), cache_key("t", cols, rows));
}

}  // namespace
}  // namespace kfuse::detail
