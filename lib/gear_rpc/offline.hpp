// gear_rpc/offline: signing a Gear.send_message extrinsic with no node at all, from values the user
// supplies (nonce, versions, genesis, era, gas), for air-gapped keys. Pure: no I/O.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "chain/transport.hpp"
#include "gear_rpc/extrinsic.hpp"

namespace p2p::gear_rpc {

// The flags as given; every one that the extrinsic needs must be present.
struct OfflineParams {
  std::optional<std::uint64_t> nonce;
  std::optional<std::uint32_t> spec_version, tx_version;
  std::optional<std::string> genesis;     // 0x + 64 hex
  std::optional<std::string> era;         // "immortal" or "PERIOD@BLOCK"
  std::optional<std::string> block_hash;  // the era's birth block, for a mortal era
  std::optional<std::uint64_t> gas;
};

struct OfflineExtrinsic {
  Bytes extrinsic;
  Hash32 hash{};  // blake2b-256 of the extrinsic, what nodes and explorers index it by
};

// UsageError naming every missing flag (--nonce, --spec-version, --tx-version, --genesis, --era, --gas and,
// for a mortal era, --block-hash), or a malformed one.
SigningContext offline_context(const OfflineParams& p);

OfflineExtrinsic sign_offline(const metadata::Metadata& md, const keys::Keypair& signer, const chain::ProgramId& program,
                              ByteView payload, const OfflineParams& p);

}  // namespace p2p::gear_rpc
