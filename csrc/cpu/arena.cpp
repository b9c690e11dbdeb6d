#include "cpu/arena.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>

namespace fastlayers::cpu::arena {

namespace {

constexpr std::size_t kPage = 4096;
constexpr std::size_t kSmallGranule = std::size_t{64} << 10;  // below kHugeFrom
constexpr std::size_t kHugeFrom = std::size_t{8} << 20;       // 2 MiB granules and alignment from here
constexpr std::size_t kHuge = std::size_t{2} << 20;

struct State {
  std::mutex mu;
  std::unordered_map<void*, std::size_t> used;  // block -> its size
  std::multimap<std::size_t, void*> free;       // size -> block
  std::size_t in_use = 0, cached = 0, peak = 0, limit = 0;
  std::uint64_t hits = 0, misses = 0;
};

State& state() {
  static State* s = [] {
    auto* st = new State();  // never destroyed: blocks may be freed during interpreter shutdown
    const char* e = std::getenv("FASTLAYERS_ARENA_LIMIT_MB");
    const long mb = e != nullptr ? std::atol(e) : -1;
    st->limit = (mb >= 0 ? static_cast<std::size_t>(mb) : std::size_t{1024}) << 20;
    return st;
  }();
  return *s;
}

std::size_t round_up(std::size_t a, std::size_t b) { return (a + b - 1) / b * b; }

std::size_t granule(std::size_t bytes) { return bytes >= kHugeFrom ? kHuge : kSmallGranule; }

// A fresh mapping of exactly `size` bytes, 2 MiB aligned for large sizes; nullptr on failure.
void* map_block(std::size_t size) {
  const std::size_t align = size >= kHugeFrom ? kHuge : kPage;
  const std::size_t len = size + (align > kPage ? align : 0);
  void* base = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return nullptr;
  const auto b = reinterpret_cast<std::uintptr_t>(base);
  const std::uintptr_t p = (b + align - 1) / align * align;
  if (p > b) munmap(base, p - b);                                        // the unaligned head
  if (b + len > p + size) munmap(reinterpret_cast<void*>(p + size), b + len - (p + size));  // and tail
#ifdef MADV_HUGEPAGE
  if (size >= kHugeFrom) madvise(reinterpret_cast<void*>(p), size, MADV_HUGEPAGE);
#endif
  return reinterpret_cast<void*>(p);
}

// Unmaps the largest free blocks until at most `keep` bytes are cached (lock held).
std::size_t trim_locked(State& st, std::size_t keep) {
  std::size_t freed = 0;
  while (st.cached > keep && !st.free.empty()) {
    auto it = std::prev(st.free.end());
    munmap(it->second, it->first);
    st.cached -= it->first;
    freed += it->first;
    st.free.erase(it);
  }
  return freed;
}

}  // namespace

void* acquire(std::size_t bytes, bool zeroed) {
  State& st = state();
  const std::size_t size = round_up(std::max(bytes, std::size_t{1}), granule(bytes));
  void* p = nullptr;
  {
    std::lock_guard<std::mutex> lock(st.mu);
    // The smallest free block that fits and wastes at most 1/8 of itself.
    auto it = st.free.lower_bound(size);
    if (it != st.free.end() && size >= it->first - it->first / 8) {
      p = it->second;
      const std::size_t got = it->first;
      st.free.erase(it);
      st.cached -= got;
      st.used.emplace(p, got);
      st.in_use += got;
      ++st.hits;
    }
  }
  if (p != nullptr) {
    if (zeroed) std::memset(p, 0, bytes);  // a new mapping is zero already; a reused one is not
    return p;
  }
  p = map_block(size);
  if (p == nullptr) {  // out of address space or memory: give the cache back and try once more
    release_free();
    p = map_block(size);
    if (p == nullptr) return nullptr;
  }
  std::lock_guard<std::mutex> lock(st.mu);
  st.used.emplace(p, size);
  st.in_use += size;
  st.peak = std::max(st.peak, st.in_use + st.cached);
  ++st.misses;
  return p;
}

std::size_t block_size(const void* p) {
  State& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  auto it = st.used.find(const_cast<void*>(p));
  return it == st.used.end() ? 0 : it->second;
}

bool release(void* p) {
  State& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  auto it = st.used.find(p);
  if (it == st.used.end()) return false;
  const std::size_t size = it->second;
  st.used.erase(it);
  st.in_use -= size;
  st.free.emplace(size, p);
  st.cached += size;
  trim_locked(st, st.limit);
  return true;
}

std::size_t release_free() {
  State& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  return trim_locked(st, 0);
}

Stats stats() {
  State& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  return Stats{st.in_use, st.cached, st.peak, st.hits, st.misses};
}

std::size_t limit() {
  State& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  return st.limit;
}

void set_limit(std::size_t bytes) {
  State& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  st.limit = bytes;
  trim_locked(st, bytes);
}

}  // namespace fastlayers::cpu::arena
