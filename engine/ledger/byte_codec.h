// engine/ledger/byte_codec.h: the little-endian, fixed-width byte writing and bounds-checked
// reading that canonical ledger formats (state snapshots, flow tables) are made of.
//
//   std::vector<std::byte> out;
//   put(out, uint64_t(7));
//   put_string32(out, "loans");                   // u32 length, then the bytes
//   ByteReader in{out, "flow table"};
//   uint64_t seven; std::string name;
//   if (!in.get(seven) || !in.get_string32(name, 64)) return in.fail("truncated");
//
// keel runs on little-endian hosts only (x86-64, AArch64), so a value's bytes are copied
// as they are.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "error/result.h"

namespace keel::ledger {

inline void put_bytes(std::vector<std::byte>& out, const void* data, size_t size) {
  const std::byte* bytes = static_cast<const std::byte*>(data);
  out.insert(out.end(), bytes, bytes + size);
}

template <class T>
void put(std::vector<std::byte>& out, T value) {
  static_assert(std::is_trivially_copyable_v<T>);
  put_bytes(out, &value, sizeof value);
}

// A u32 length, then the bytes.
inline void put_string32(std::vector<std::byte>& out, std::string_view text) {
  put(out, uint32_t(text.size()));
  put_bytes(out, text.data(), text.size());
}

// Every read says whether the bytes were there; errors name the place and the offset.
struct ByteReader {
  std::span<const std::byte> bytes;
  std::string_view place;  // e.g. "state snapshot"
  size_t offset = 0;

  template <class T>
  bool get(T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    if (bytes.size() - offset < sizeof(T)) return false;
    std::memcpy(&value, bytes.data() + offset, sizeof(T));
    offset += sizeof(T);
    return true;
  }
  bool get_string(std::string& value, size_t size) {
    if (bytes.size() - offset < size) return false;
    value.assign(reinterpret_cast<const char*>(bytes.data() + offset), size);
    offset += size;
    return true;
  }
  // put_string32's form, refusing lengths past `size_max`.
  bool get_string32(std::string& value, size_t size_max) {
    uint32_t size = 0;
    size_t start = offset;
    if (!get(size) || size > size_max || !get_string(value, size)) {
      offset = start;
      return false;
    }
    return true;
  }
  bool at_end() const { return offset == bytes.size(); }
  Error fail(std::string_view what) const { return fail_at(offset, what); }
  Error fail_at(size_t at, std::string_view what) const {
    return make_error(place, "offset " + std::to_string(at) + ": " + std::string(what));
  }
};

}  // namespace keel::ledger
