// gear_rpc/extrinsic: signed v4 extrinsics for Gear.send_message: the call bytes, the
// signed extensions read from the runtime metadata, the signing payload, and the
// inverse (decode + verify) that the stand-in node uses. Pure: no I/O.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "keys/ed25519.hpp"
#include "metadata/metadata.hpp"
#include "util/bytes.hpp"

namespace p2p::gear_rpc {

// Mortality: immortal, or a period (power of two, 4..65536) anchored at a birth block.
struct Era {
  bool immortal = true;
  std::uint64_t period = 0;
  std::uint64_t birth_block = 0;  // the block number the era starts from (phase = birth % period)
  static Era mortal(std::uint64_t period, std::uint64_t current_block);
  Bytes encode() const;           // 00, or the two-byte mortal form
  static Era decode(scale::Decoder& d);  // UsageError/DecodeError on a malformed era
  // The first block of the era that contains `current`, for checking the birth block hash.
  std::uint64_t birth(std::uint64_t current) const;
};

// "PERIOD@BLOCK" or "immortal" as the --era flag takes it.
Era parse_era(std::string_view text);

struct SendMessageCall {
  Hash32 destination{};
  Bytes payload;
  std::uint64_t gas_limit = 0;
  scale::u128 value = 0;
  bool keep_alive = false;
};

// What the signer commits to besides the call.
struct SigningContext {
  std::uint32_t spec_version = 0;
  std::uint32_t tx_version = 0;
  Hash32 genesis{};
  Era era;
  Hash32 era_block_hash{};  // the birth block's hash for a mortal era; the genesis hash when immortal
  std::uint64_t nonce = 0;
  scale::u128 tip = 0;
};

// Call bytes: pallet index ++ call index ++ args, with both indices read from the metadata.
Bytes encode_send_message(const metadata::Metadata& md, const SendMessageCall& call);
SendMessageCall decode_send_message(const metadata::Metadata& md, ByteView call);

// The extra and the additional-signed bytes, in the metadata's extension order. An extension this
// code does not know throws RuntimeError naming it (we never sign what we cannot explain).
Bytes encode_extra(const metadata::Metadata& md, const SigningContext& ctx);
Bytes encode_additional(const metadata::Metadata& md, const SigningContext& ctx);

// call ++ extra ++ additional, or its blake2b-256 when longer than 256 bytes.
Bytes signing_payload(const metadata::Metadata& md, ByteView call, const SigningContext& ctx);

// Compact(len) ++ 0x84 ++ 0x00 ++ signer ++ 0x00 (Ed25519) ++ signature ++ extra ++ call.
Bytes build_signed(const metadata::Metadata& md, const keys::Keypair& signer, ByteView call,
                   const SigningContext& ctx);

// The hash nodes index extrinsics by: blake2b-256 of the whole encoded extrinsic (length prefix included).
Hash32 extrinsic_hash(ByteView extrinsic);

struct DecodedExtrinsic {
  keys::PublicKey signer{};
  keys::Signature signature{};
  Era era;
  std::uint64_t nonce = 0;
  scale::u128 tip = 0;
  std::uint8_t metadata_hash_mode = 0;
  Bytes call;  // pallet ++ call index ++ args
};

// Throws scale::DecodeError on malformed bytes, and RuntimeError for an unsigned extrinsic, a version
// other than 4, or a signature type other than Ed25519.
DecodedExtrinsic decode_signed(const metadata::Metadata& md, ByteView extrinsic);

// Rebuilds the signing payload from the decoded extrinsic and the node's own context (spec, tx version,
// genesis, era block hash) and checks the signature. False on a bad signature.
bool verify_signed(const metadata::Metadata& md, const DecodedExtrinsic& x, std::uint32_t spec_version,
                   std::uint32_t tx_version, const Hash32& genesis, const Hash32& era_block_hash);

}  // namespace p2p::gear_rpc
