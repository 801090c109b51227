// A bounded cache of immutable host buffers, the least recently used evicted first
// (internal). Keys are byte strings that must encode everything a buffer's contents
// depend on (cache_key below writes each field's bytes after a tag); a buffer is
// handed out as a shared pointer, so eviction or clear() never frees one a caller
// still reads. A buffer larger than the whole budget is not kept; a budget of 0
// keeps nothing. Calls are serialised by a mutex (cheap next to the buffers' cost).
#pragma once

#include <cstddef>
#include <cstring>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <unordered_map>

namespace kfuse::detail {

class LruCache {
 public:
  using Buffer = std::shared_ptr<const void>;

  explicit LruCache(std::size_t budget) : budget_(budget) {}
  LruCache(const LruCache&) = delete;
  LruCache& operator=(const LruCache&) = delete;

  // The buffer stored under key (now the most recently used), or null.
  Buffer find(const std::string& key);
  // Stores buffer (`bytes` long) under key, replacing an entry with that key, then
  // evicts the least recently used entries until the total fits the budget.
  void insert(const std::string& key, Buffer buffer, std::size_t bytes);

  void set_budget(std::size_t bytes);  // evicts down to the new budget at once
  std::size_t budget() const;
  std::size_t bytes() const;  // the total size of the entries held
  std::size_t entries() const;
  void clear();

 private:
  struct Entry {
    std::string key;
    Buffer buffer;
    std::size_t bytes = 0;
  };
  void evict_to(std::size_t budget);  // mutex held

  mutable std::mutex mutex_;
  std::size_t budget_ = 0, bytes_ = 0;
  std::list<Entry> order_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

// A key: the tag (what the buffer is and its layout), then the bytes of each field.
template <class... Fields>
std::string cache_key(const char* tag, const Fields&... fields) {
  static_assert((std::is_trivially_copyable_v<Fields> && ...), "fields are plain values");
  std::string key(tag);
  key.push_back('\0');
  (key.append(reinterpret_cast<const char*>(&fields), sizeof(Fields)), ...);
  return key;
}

}  // namespace kfuse::detail
