#include "src/core/lru_cache.hpp"

namespace kfuse::detail {

LruCache::Buffer LruCache::find(const std::string& key) {
  const std::lock_guard<std::mutex> lock(mutex_);
  const auto it = index_.find(key);
  if (it == index_.end()) return nullptr;
  order_.splice(order_.begin(), order_, it->second);
  return it->second->buffer;
}

void LruCache::insert(const std::string& key, Buffer buffer, std::size_t bytes) {
  const std::lock_guard<std::mutex> lock(mutex_);
  const auto it = index_.find(key);
  if (it != index_.end()) {
    bytes_ -= it->second->bytes;
    order_.erase(it->second);
    index_.erase(it);
  }
  if (bytes > budget_) return;
  order_.push_front(Entry{key, std::move(buffer), bytes});
  index_.emplace(key, order_.begin());
  bytes_ += bytes;
  evict_to(budget_);
}

void LruCache::evict_to(std::size_t budget) {
  while (bytes_ > budget && !order_.empty()) {
    bytes_ -= order_.back().bytes;
    index_.erase(order_.back().key);
    order_.pop_back();
  }
}

void LruCache::set_budget(std::size_t bytes) {
  const std::lock_guard<std::mutex> lock(mutex_);
  budget_ = bytes;
  evict_to(budget_);
}

std::size_t LruCache::budget() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return budget_;
}

std::size_t LruCache::bytes() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return bytes_;
}

std::size_t LruCache::entries() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return order_.size();
}

void LruCache::clear() {
  const std::lock_guard<std::mutex> lock(mutex_);
  order_.clear();
  index_.clear();
  bytes_ = 0;
}

}  // namespace kfuse::detail
