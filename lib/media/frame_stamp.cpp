// media/frame_stamp: the block code for the latency probe.
#include "media/frame_stamp.hpp"

#include <array>

namespace p2p::media {
namespace {

constexpr int kBits = kStampColumns * kStampRows;  // 72
constexpr std::uint8_t kSync = 0xA5;
constexpr std::uint8_t kBlack = 16;
constexpr std::uint8_t kWhite = 235;

bool fits(const RawFrame& f) {
  return f.luma != nullptr && f.width >= kStampColumns * kStampBlock &&
         f.height >= kStampRows * kStampBlock && f.stride >= f.width;
}

std::uint16_t crc16_ccitt(const std::uint8_t* data, int n) {
  std::uint16_t crc = 0xFFFF;
  for (int i = 0; i < n; ++i) {
    crc ^= static_cast<std::uint16_t>(data[i] << 8);
    for (int b = 0; b < 8; ++b) {
      crc = (crc & 0x8000) != 0 ? static_cast<std::uint16_t>((crc << 1) ^ 0x1021)
                                : static_cast<std::uint16_t>(crc << 1);
    }
  }
  return crc;
}

std::array<std::uint8_t, 6> value_bytes(std::uint64_t v) {
  std::array<std::uint8_t, 6> b{};
  for (int i = 0; i < 6; ++i) b[i] = static_cast<std::uint8_t>(v >> (8 * (5 - i)));
  return b;
}

// Bit i of the 72-bit word, most significant first: sync, value, crc.
std::array<bool, kBits> encode(std::uint64_t value) {
  auto bytes = value_bytes(value & kStampMask);
  std::uint16_t crc = crc16_ccitt(bytes.data(), 6);
  std::array<std::uint8_t, 9> word{kSync, bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5],
                                   static_cast<std::uint8_t>(crc >> 8), static_cast<std::uint8_t>(crc)};
  std::array<bool, kBits> bits{};
  for (int i = 0; i < kBits; ++i) bits[i] = ((word[i / 8] >> (7 - i % 8)) & 1) != 0;
  return bits;
}

void fill_block(RawFrame& f, int bx, int by, std::uint8_t y) {
  for (int r = 0; r < kStampBlock; ++r) {
    std::uint8_t* row = f.luma + static_cast<std::ptrdiff_t>(by * kStampBlock + r) * f.stride;
    for (int c = 0; c < kStampBlock; ++c) row[bx * kStampBlock + c] = y;
  }
}

// Mean of the inner half of the block: edges blur most under compression.
bool block_is_white(const RawFrame& f, int bx, int by) {
  int sum = 0, n = 0;
  for (int r = kStampBlock / 4; r < kStampBlock * 3 / 4; ++r) {
    const std::uint8_t* row = f.luma + static_cast<std::ptrdiff_t>(by * kStampBlock + r) * f.stride;
    for (int c = kStampBlock / 4; c < kStampBlock * 3 / 4; ++c, ++n) sum += row[bx * kStampBlock + c];
  }
  return sum / n > (kBlack + kWhite) / 2;
}

}  // namespace

bool write_stamp(RawFrame& frame, std::uint64_t value) {
  if (!fits(frame)) return false;
  auto bits = encode(value);
  for (int i = 0; i < kBits; ++i) {
    fill_block(frame, i % kStampColumns, i / kStampColumns, bits[i] ? kWhite : kBlack);
  }
  return true;
}

std::optional<std::uint64_t> read_stamp(const RawFrame& frame) {
  if (!fits(frame)) return std::nullopt;
  std::array<std::uint8_t, 9> word{};
  for (int i = 0; i < kBits; ++i) {
    if (block_is_white(frame, i % kStampColumns, i / kStampColumns)) {
      word[i / 8] = static_cast<std::uint8_t>(word[i / 8] | (1 << (7 - i % 8)));
    }
  }
  if (word[0] != kSync) return std::nullopt;
  std::uint16_t crc = static_cast<std::uint16_t>((word[7] << 8) | word[8]);
  if (crc16_ccitt(&word[1], 6) != crc) return std::nullopt;
  std::uint64_t v = 0;
  for (int i = 1; i <= 6; ++i) v = (v << 8) | word[i];
  return v;
}

std::int64_t stamp_delta(std::uint64_t later, std::uint64_t earlier) {
  std::uint64_t d = (later - earlier) & kStampMask;
  // A "later" that is really earlier shows up as a huge positive distance: fold it back.
  if (d > kStampMask / 2) return -static_cast<std::int64_t>((earlier - later) & kStampMask);
  return static_cast<std::int64_t>(d);
}

}  // namespace p2p::media
