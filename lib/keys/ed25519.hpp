// keys/ed25519: ed25519 key pairs (libsodium) and SS58 / hex account addresses.
// No file I/O here; the keystore module stores keys.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "util/bytes.hpp"
#include "util/error.hpp"

namespace p2p::keys {

using PublicKey = std::array<std::uint8_t, 32>;
using Seed = std::array<std::uint8_t, 32>;
using Signature = std::array<std::uint8_t, 64>;

inline constexpr std::uint16_t kVaraPrefix = 137;

class Keypair {
 public:
  static Keypair from_seed(const Seed& seed);
  static Keypair generate();
  Keypair() = default;
  Keypair(const Keypair&) = default;
  Keypair(Keypair&&) = default;
  Keypair& operator=(const Keypair&) = default;
  Keypair& operator=(Keypair&&) = default;
  ~Keypair();  // wipes the secret bytes
  const PublicKey& public_key() const { return pk_; }
  const Seed& seed() const { return seed_; }
  Signature sign(ByteView message) const;

 private:
  Seed seed_{};
  PublicKey pk_{};
  std::array<std::uint8_t, 64> sk_{};  // libsodium's expanded secret key
};

bool verify(const PublicKey& pk, ByteView message, const Signature& sig);

// SS58 with the given network prefix (0..16383), blake2b-512("SS58PRE" ...) checksum.
std::string ss58_encode(const PublicKey& pk, std::uint16_t prefix = kVaraPrefix);

struct Ss58Address {
  PublicKey public_key{};
  std::uint16_t prefix = 0;
};
// Throws UsageError on a bad base58 digit, a wrong length, or a bad checksum.
Ss58Address ss58_decode(std::string_view text);

// An account argument: SS58 of any prefix, or 64 hex digits (with or without 0x).
// Throws UsageError saying which form was expected.
PublicKey parse_address(std::string_view text);

// A seed argument: 0x + 64 hex digits. Throws UsageError otherwise.
Seed parse_seed(std::string_view text);

}  // namespace p2p::keys
