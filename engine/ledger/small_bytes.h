// engine/ledger/small_bytes.h: a byte string that keeps up to InlineBytes in itself and
// goes to the heap only beyond that. A compute task's input and its result entry are a
// few dozen bytes almost always, and the heap copies of them (one allocation per copy, a
// cold line per read) were a tenth of what a task cost the shard and the scheduler.
//
//   SmallBytes<32> input(request_bytes);      // inline when request_bytes.size() <= 32
//   input.append(more_bytes);                 // moves to the heap if it grows past 32
//   std::memcpy(out, input.data(), input.size());
//   if (input == other) ...
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace keel::ledger {

template <size_t InlineBytes>
class SmallBytes {
 public:
  SmallBytes() = default;
  SmallBytes(std::span<const std::byte> bytes) { assign(bytes); }  // NOLINT: a byte string is its bytes
  SmallBytes(const std::vector<std::byte>& bytes) { assign(bytes); }  // NOLINT

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  bool on_heap() const { return size_ > InlineBytes; }
  const std::byte* data() const { return on_heap() ? heap_.data() : inline_.data(); }
  std::byte* data() { return on_heap() ? heap_.data() : inline_.data(); }
  std::span<const std::byte> view() const { return {data(), size_}; }
  std::span<std::byte> span() { return {data(), size_}; }
  operator std::span<const std::byte>() const { return view(); }  // NOLINT: read as bytes anywhere
  const std::byte* begin() const { return data(); }
  const std::byte* end() const { return data() + size_; }

  void assign(std::span<const std::byte> bytes) {
    if (bytes.size() <= InlineBytes) {
      if (!bytes.empty()) std::memcpy(inline_.data(), bytes.data(), bytes.size());
      heap_.clear();
    } else {
      heap_.assign(bytes.begin(), bytes.end());
    }
    size_ = bytes.size();
  }
  void assign(const std::byte* first, const std::byte* last) { assign(std::span<const std::byte>(first, last)); }

  // New bytes (past the old size) are unspecified; the first min(old, new) are kept.
  void resize(size_t bytes) {
    if (bytes <= InlineBytes) {
      if (on_heap()) std::memcpy(inline_.data(), heap_.data(), bytes);
      heap_.clear();
    } else if (!on_heap()) {
      heap_.resize(bytes);
      std::memcpy(heap_.data(), inline_.data(), size_);
    } else {
      heap_.resize(bytes);
    }
    size_ = bytes;
  }

  void append(std::span<const std::byte> bytes) {
    size_t old = size_;
    resize(old + bytes.size());
    if (!bytes.empty()) std::memcpy(data() + old, bytes.data(), bytes.size());
  }

  // Empty again; a heap buffer of more than keep_capacity_bytes is handed back (a rare
  // huge value must not pin its memory in a slot that is reused for small ones).
  void clear(size_t keep_capacity_bytes = SIZE_MAX) {
    size_ = 0;
    heap_.clear();
    if (heap_.capacity() > keep_capacity_bytes) std::vector<std::byte>().swap(heap_);
  }

  bool operator==(const SmallBytes& other) const { return std::ranges::equal(view(), other.view()); }

 private:
  std::array<std::byte, InlineBytes> inline_;  // the bytes while size_ <= InlineBytes
  uint32_t size_ = 0;
  std::vector<std::byte> heap_;  // the bytes past InlineBytes; its capacity is kept for reuse
};

}  // namespace keel::ledger
