// gear_rpc/offline: the flag checks and the signing for --offline; the signing itself is extrinsic.cpp's.
#include "gear_rpc/offline.hpp"

#include <fmt/format.h>

#include <vector>

#include "util/error.hpp"

namespace p2p::gear_rpc {

namespace {

Hash32 hash_flag(const std::string& flag, const std::string& value) {
  auto h = hash32_from_hex(value);
  if (!h || !value.starts_with("0x"))
    throw UsageError(fmt::format("{} '{}' is not valid: use 0x followed by 64 hex digits", flag, value));
  return *h;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) out += (i == 0 ? "" : i + 1 == v.size() ? " and " : ", ") + v[i];
  return out;
}

}  // namespace

SigningContext offline_context(const OfflineParams& p) {
  std::vector<std::string> missing;
  if (!p.nonce) missing.push_back("--nonce");
  if (!p.spec_version) missing.push_back("--spec-version");
  if (!p.tx_version) missing.push_back("--tx-version");
  if (!p.genesis) missing.push_back("--genesis");
  if (!p.era) missing.push_back("--era");
  if (!p.gas) missing.push_back("--gas");
  std::optional<Era> era;
  if (p.era) {
    era = parse_era(*p.era);
    if (!era->immortal && !p.block_hash) missing.push_back("--block-hash (the hash of the era's first block)");
  }
  if (!missing.empty())
    throw UsageError(fmt::format("--offline needs {} (nothing can be read from a node)", join(missing)));

  if (*p.nonce > UINT32_MAX) throw UsageError(fmt::format("--nonce {} is above the runtime's 32-bit nonces", *p.nonce));
  SigningContext ctx;
  ctx.nonce = *p.nonce;
  ctx.spec_version = *p.spec_version;
  ctx.tx_version = *p.tx_version;
  ctx.genesis = hash_flag("--genesis", *p.genesis);
  ctx.era = *era;
  if (era->immortal) {
    ctx.era_block_hash = ctx.genesis;
  } else {
    // With a period over 4096 the phase is quantized, so the era may start before the given block.
    std::uint64_t block = std::stoull(p.era->substr(p.era->find('@') + 1));
    if (era->birth_block != block)
      throw UsageError(fmt::format("--era {}: with period {} the era starts at block {}; give --era {}@{} and that "
                                   "block's hash as --block-hash",
                                   *p.era, era->period, era->birth_block, era->period, era->birth_block));
    ctx.era_block_hash = hash_flag("--block-hash", *p.block_hash);
  }
  return ctx;
}

OfflineExtrinsic sign_offline(const metadata::Metadata& md, const keys::Keypair& signer, const chain::ProgramId& program,
                              ByteView payload, const OfflineParams& p) {
  SigningContext ctx = offline_context(p);
  SendMessageCall call{program, Bytes(payload.begin(), payload.end()), *p.gas, 0, false};
  OfflineExtrinsic out;
  out.extrinsic = build_signed(md, signer, encode_send_message(md, call), ctx);
  out.hash = extrinsic_hash(out.extrinsic);
  return out;
}

}  // namespace p2p::gear_rpc
