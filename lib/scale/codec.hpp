// scale/codec: the SCALE wire format (parity-scale-codec) for the types the
// W3Bstreaming program and the Gear runtime use. Pure: no I/O.
// The decoder never reads past its input; malformed input throws DecodeError.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/bytes.hpp"
#include "util/error.hpp"

namespace p2p::scale {

// __extension__: __int128 is a GCC/Clang extension that -Wpedantic would reject.
__extension__ typedef unsigned __int128 u128;

struct DecodeError : Error {
  explicit DecodeError(std::string m) : Error(Exit::runtime, "malformed SCALE data: " + std::move(m)) {}
};

class Encoder {
 public:
  void u8(std::uint8_t v);
  void u16(std::uint16_t v);
  void u32(std::uint32_t v);
  void u64(std::uint64_t v);
  void u128(scale::u128 v);
  void boolean(bool v);
  void compact(std::uint64_t v);     // canonical (shortest) compact form
  void compact128(scale::u128 v);
  void str(std::string_view s);      // Compact(len) ++ utf-8
  void bytes(ByteView b);            // Vec<u8>: Compact(len) ++ bytes
  void raw(ByteView b);              // no length prefix
  void arr32(const std::array<std::uint8_t, 32>& a) { raw(a); }
  template <class T, class F>
  void option(const std::optional<T>& v, F&& each) {
    if (!v) return u8(0);
    u8(1);
    each(*this, *v);
  }
  template <class T, class F>
  void vec(const std::vector<T>& v, F&& each) {
    compact(v.size());
    for (const auto& x : v) each(*this, x);
  }
  const Bytes& out() const& { return buf_; }
  Bytes take() && { return std::move(buf_); }

 private:
  Bytes buf_;
};

class Decoder {
 public:
  explicit Decoder(ByteView in) : in_(in) {}
  std::uint8_t u8();
  std::uint16_t u16();
  std::uint32_t u32();
  std::uint64_t u64();
  scale::u128 u128();
  bool boolean();                    // only 0x00 or 0x01
  std::uint64_t compact();           // rejects non-canonical forms and values over u64
  scale::u128 compact128();
  std::string str();                 // length checked against what is left before allocating
  Bytes bytes();
  ByteView raw(std::size_t n);
  std::array<std::uint8_t, 32> arr32();
  template <class T, class F>
  std::optional<T> option(F&& each) {
    switch (u8()) {
      case 0: return std::nullopt;
      case 1: return std::optional<T>(each(*this));
      default: throw DecodeError("Option tag must be 0 or 1");
    }
  }
  // Vec<T>: min_item_size guards against a huge length with too few bytes left.
  template <class T, class F>
  std::vector<T> vec(F&& each, std::size_t min_item_size = 1) {
    auto n = compact();
    if (min_item_size > 0 && n > remaining() / min_item_size) throw DecodeError("vector length exceeds input");
    std::vector<T> out;
    out.reserve(static_cast<std::size_t>(n));
    for (std::uint64_t i = 0; i < n; ++i) out.push_back(each(*this));
    return out;
  }
  std::size_t remaining() const { return in_.size() - pos_; }
  std::size_t position() const { return pos_; }
  bool at_end() const { return pos_ == in_.size(); }
  void expect_end() const;           // throws on trailing bytes (over-long input)

 private:
  ByteView in_;
  std::size_t pos_ = 0;
};

}  // namespace p2p::scale
