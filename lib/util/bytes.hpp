// util/bytes: byte buffers, hex text, and the hashes every layer shares.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace p2p {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;
using Hash32 = std::array<std::uint8_t, 32>;

// Lower-case hex, with "0x" in front unless prefix is false.
std::string to_hex(ByteView bytes, bool prefix = true);

// Accepts an optional 0x/0X prefix and either case; nullopt on odd length or a non-hex digit.
std::optional<Bytes> from_hex(std::string_view text);

// Exactly 32 bytes of hex (optional 0x), else nullopt.
std::optional<Hash32> hash32_from_hex(std::string_view text);

inline ByteView view(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

Bytes concat(std::initializer_list<ByteView> parts);

// blake2b with the given output length (libsodium's generichash).
Bytes blake2b(ByteView data, std::size_t out_len);
Hash32 blake2b_256(ByteView data);

}  // namespace p2p
