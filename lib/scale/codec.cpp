// scale/codec: SCALE encoder and the strict decoder behind every payload we read.
// The decoder accepts only canonical encodings, so decode followed by encode gives back the input.
#include "scale/codec.hpp"

#include <string>

namespace p2p::scale {

namespace {

constexpr std::uint64_t kOneByteLimit = 1ULL << 6;
constexpr std::uint64_t kTwoByteLimit = 1ULL << 14;
constexpr std::uint64_t kFourByteLimit = 1ULL << 30;

// Number of bytes needed to hold v (at least 1).
std::size_t byte_width(u128 v) {
  std::size_t n = 1;
  while (v >>= 8) ++n;
  return n;
}

// Length of the UTF-8 sequence starting at s[i], or 0 when it is not well formed.
// Follows the Unicode table of well-formed sequences: no overlongs, no surrogates, nothing past U+10FFFF.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  auto at = [&](std::size_t k) { return static_cast<std::uint8_t>(s[k]); };
  std::uint8_t b0 = at(i);
  if (b0 < 0x80) return 1;
  std::size_t len;
  std::uint8_t lo = 0x80, hi = 0xbf;  // range allowed for the second byte
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    len = 2;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    len = 3;
    if (b0 == 0xe0) lo = 0xa0;
    if (b0 == 0xed) hi = 0x9f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    len = 4;
    if (b0 == 0xf0) lo = 0x90;
    if (b0 == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (s.size() - i < len) return 0;
  if (at(i + 1) < lo || at(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < len; ++k)
    if ((at(i + k) & 0xc0) != 0x80) return 0;
  return len;
}

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    std::size_t n = utf8_sequence(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

template <class T>
void put_le(Bytes& out, T v, std::size_t width) {
  for (std::size_t i = 0; i < width; ++i) {
    out.push_back(static_cast<std::uint8_t>(v & 0xff));
    v >>= 8;
  }
}

}  // namespace

// ---- Encoder ----

void Encoder::u8(std::uint8_t v) { buf_.push_back(v); }
void Encoder::u16(std::uint16_t v) { put_le(buf_, v, 2); }
void Encoder::u32(std::uint32_t v) { put_le(buf_, v, 4); }
void Encoder::u64(std::uint64_t v) { put_le(buf_, v, 8); }
void Encoder::u128(scale::u128 v) { put_le(buf_, v, 16); }
void Encoder::boolean(bool v) { buf_.push_back(v ? 1 : 0); }

void Encoder::compact(std::uint64_t v) { compact128(v); }

void Encoder::compact128(scale::u128 v) {
  if (v < kOneByteLimit) return put_le(buf_, v << 2, 1);
  if (v < kTwoByteLimit) return put_le(buf_, (v << 2) | 0b01, 2);
  if (v < kFourByteLimit) return put_le(buf_, (v << 2) | 0b10, 4);
  std::size_t n = byte_width(v);  // 4..16 here, since v >= 2^30
  buf_.push_back(static_cast<std::uint8_t>(((n - 4) << 2) | 0b11));
  put_le(buf_, v, n);
}

void Encoder::str(std::string_view s) { bytes(view(s)); }

void Encoder::bytes(ByteView b) {
  compact(b.size());
  raw(b);
}

void Encoder::raw(ByteView b) { buf_.insert(buf_.end(), b.begin(), b.end()); }

// ---- Decoder ----

ByteView Decoder::raw(std::size_t n) {
  if (n > remaining())
    throw DecodeError("input ends early: need " + std::to_string(n) + " more byte(s) at offset " +
                      std::to_string(pos_) + ", have " + std::to_string(remaining()));
  ByteView out = in_.subspan(pos_, n);
  pos_ += n;
  return out;
}

namespace {
u128 read_le(ByteView b) {
  u128 v = 0;
  for (std::size_t i = b.size(); i-- > 0;) v = (v << 8) | b[i];
  return v;
}
}  // namespace

std::uint8_t Decoder::u8() { return raw(1)[0]; }
std::uint16_t Decoder::u16() { return static_cast<std::uint16_t>(read_le(raw(2))); }
std::uint32_t Decoder::u32() { return static_cast<std::uint32_t>(read_le(raw(4))); }
std::uint64_t Decoder::u64() { return static_cast<std::uint64_t>(read_le(raw(8))); }
scale::u128 Decoder::u128() { return read_le(raw(16)); }

bool Decoder::boolean() {
  std::uint8_t b = u8();
  if (b > 1) throw DecodeError("bool byte must be 0 or 1, got " + std::to_string(b));
  return b == 1;
}

std::uint64_t Decoder::compact() {
  scale::u128 v = compact128();
  if (v > UINT64_MAX) throw DecodeError("compact integer does not fit in 64 bits");
  return static_cast<std::uint64_t>(v);
}

// Each mode must carry a value too large for the shorter modes, else the encoding is not canonical.
scale::u128 Decoder::compact128() {
  std::size_t start = pos_;
  std::uint8_t first = u8();
  auto reject = [&](const char* why) {
    return DecodeError(std::string("non-canonical compact integer at offset ") + std::to_string(start) +
                       ": " + why);
  };
  switch (first & 0b11) {
    case 0b00:
      return first >> 2;
    case 0b01: {
      pos_ = start;
      std::uint64_t v = static_cast<std::uint64_t>(u16()) >> 2;
      if (v < kOneByteLimit) throw reject("value below 64 in two-byte mode");
      return v;
    }
    case 0b10: {
      pos_ = start;
      std::uint64_t v = static_cast<std::uint64_t>(u32()) >> 2;
      if (v < kTwoByteLimit) throw reject("value below 2^14 in four-byte mode");
      return v;
    }
    default: {
      std::size_t n = static_cast<std::size_t>(first >> 2) + 4;
      if (n > 16) throw DecodeError("compact integer of " + std::to_string(n) + " bytes does not fit in 128 bits");
      ByteView b = raw(n);
      if (b[n - 1] == 0) throw reject("big-integer mode with a zero top byte");
      scale::u128 v = read_le(b);
      if (v < kFourByteLimit) throw reject("value below 2^30 in big-integer mode");
      return v;
    }
  }
}

std::string Decoder::str() {
  auto n = compact();
  if (n > remaining()) throw DecodeError("string length " + std::to_string(n) + " exceeds the input left");
  ByteView b = raw(static_cast<std::size_t>(n));
  std::string s(b.begin(), b.end());
  if (!valid_utf8(s)) throw DecodeError("string is not valid UTF-8");
  return s;
}

Bytes Decoder::bytes() {
  auto n = compact();
  if (n > remaining()) throw DecodeError("byte vector length " + std::to_string(n) + " exceeds the input left");
  ByteView b = raw(static_cast<std::size_t>(n));
  return Bytes(b.begin(), b.end());
}

std::array<std::uint8_t, 32> Decoder::arr32() {
  ByteView b = raw(32);
  std::array<std::uint8_t, 32> out;
  std::copy(b.begin(), b.end(), out.begin());
  return out;
}

void Decoder::expect_end() const {
  if (!at_end())
    throw DecodeError(std::to_string(remaining()) + " unexpected trailing byte(s) at offset " + std::to_string(pos_));
}

}  // namespace p2p::scale
