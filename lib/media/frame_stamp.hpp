// media/frame_stamp: writes a number into a raw frame as a grid of black and white luma blocks
// that survives lossy coding, and reads it back; the glass-to-glass latency probe.
#pragma once
#include <cstdint>
#include <optional>

#include "media/options.hpp"

namespace p2p::media {

// 3 rows of 24 blocks (16x16 pixels) in the top-left corner: 8 sync bits, 48 value bits,
// a CRC-16 over the value. Needs a frame of at least 384x48.
inline constexpr int kStampBlock = 16;
inline constexpr int kStampColumns = 24;
inline constexpr int kStampRows = 3;
inline constexpr std::uint64_t kStampMask = (std::uint64_t{1} << 48) - 1;

// Returns false (and writes nothing) when the frame is too small.
bool write_stamp(RawFrame& frame, std::uint64_t value);
// nullopt when the frame is too small or the sync bits or CRC do not match.
std::optional<std::uint64_t> read_stamp(const RawFrame& frame);

// later - earlier for two 48-bit stamps, allowing one wrap.
std::int64_t stamp_delta(std::uint64_t later, std::uint64_t earlier);

}  // namespace p2p::media
