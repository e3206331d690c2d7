// gear_rpc/extrinsic: signed v4 extrinsics for Gear.send_message, built and read back through the runtime
// metadata's own types (call enum, signed extensions), so the bytes follow the runtime, not a table.
#include "gear_rpc/extrinsic.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <charconv>

#include "gear_rpc/detail.hpp"
#include "util/error.hpp"

namespace p2p::gear_rpc {

using metadata::Metadata;
using metadata::SignedExtension;
using metadata::Value;

namespace {

constexpr std::uint8_t kSignedV4 = 0x84;
constexpr std::uint8_t kAddressId = 0x00;   // MultiAddress::Id
constexpr std::uint8_t kEd25519 = 0x00;     // MultiSignature::Ed25519
constexpr std::size_t kMaxUnhashedPayload = 256;

bool valid_period(std::uint64_t p) { return p >= 4 && p <= 65536 && std::has_single_bit(p); }

std::uint64_t quantize_factor(std::uint64_t period) { return std::max<std::uint64_t>(period >> 12, 1); }

// What each extension contributes. Anything else is refused: we never sign what we cannot explain.
enum class Kind { Unit, SpecVersion, TxVersion, Genesis, Mortality, Nonce, Tip, MetadataHash };

Kind kind_of(const SignedExtension& ext) {
  const std::string& id = ext.identifier;
  if (id == "StakingBlackList" || id == "CheckNonZeroSender" || id == "CheckWeight") return Kind::Unit;
  if (id == "CheckSpecVersion") return Kind::SpecVersion;
  if (id == "CheckTxVersion") return Kind::TxVersion;
  if (id == "CheckGenesis") return Kind::Genesis;
  if (id == "CheckMortality" || id == "CheckEra") return Kind::Mortality;
  if (id == "CheckNonce") return Kind::Nonce;
  if (id == "ChargeTransactionPayment") return Kind::Tip;
  if (id == "CheckMetadataHash") return Kind::MetadataHash;
  throw RuntimeError(fmt::format(
      "the runtime asks for the signed extension '{}', which this build does not know; it cannot sign for this "
      "runtime (update p2pstream)",
      id));
}

// The metadata encoder reports a misfit as UsageError; here it means the runtime changed a type under us.
Bytes encode_as(const Metadata& md, const SignedExtension& ext, metadata::TypeId type, const Value& v) {
  try {
    return md.encode(type, v);
  } catch (const UsageError& e) {
    throw RuntimeError(fmt::format("the runtime's {} extension has a type this build does not expect ({})",
                                   ext.identifier, e.what()));
  }
}

// The Era enum's value for the metadata encoder: the variant whose index is the era's first byte.
Value era_value(const Metadata& md, const SignedExtension& ext, const Era& era) {
  Bytes b = era.encode();
  const auto* en = md.type(detail::unwrap_newtypes(md, ext.type)).as<metadata::Enum>();
  if (en)
    for (const auto& var : en->variants)
      if (var.index == b[0]) return b.size() == 1 ? Value(var.name) : Value{{var.name, b[1]}};
  throw RuntimeError(fmt::format("the runtime's {} extension is not the Era enum this build knows", ext.identifier));
}

Value extra_value(const Metadata& md, const SignedExtension& ext, Kind k, const SigningContext& ctx) {
  switch (k) {
    case Kind::Mortality: return era_value(md, ext, ctx.era);
    case Kind::Nonce: return ctx.nonce;
    case Kind::Tip: return detail::u128_to_string(ctx.tip);
    case Kind::MetadataHash: return Value{{"mode", "Disabled"}};  // mode 0: no metadata hash is signed
    default: return Value::array();                              // no extra
  }
}

Value additional_value(const SignedExtension&, Kind k, const SigningContext& ctx) {
  switch (k) {
    case Kind::SpecVersion: return ctx.spec_version;
    case Kind::TxVersion: return ctx.tx_version;
    case Kind::Genesis: return to_hex(ctx.genesis);
    // An immortal transaction is anchored at genesis whatever the caller put in era_block_hash.
    case Kind::Mortality: return to_hex(ctx.era.immortal ? ctx.genesis : ctx.era_block_hash);
    case Kind::MetadataHash: return nullptr;  // Option<[u8; 32]>::None
    default: return Value::array();
  }
}

std::uint64_t parse_u64(std::string_view text, std::string_view what) {
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size())
    throw UsageError(fmt::format("--era: {} '{}' is not a whole number (use PERIOD@BLOCK, e.g. 64@1000, or immortal)",
                                 what, text));
  return v;
}

void check_v4(const Metadata& md) {
  if (md.extrinsic().version != 4)
    throw RuntimeError(fmt::format("the runtime uses extrinsic version {}; this build signs version 4 only",
                                   md.extrinsic().version));
}

}  // namespace

// ---- Era ----

Era Era::mortal(std::uint64_t period, std::uint64_t current_block) {
  std::uint64_t p = period <= 4 ? 4 : period >= 65536 ? 65536 : std::bit_ceil(period);
  std::uint64_t phase = current_block % p;
  std::uint64_t quantized = phase / quantize_factor(p) * quantize_factor(p);
  Era e;
  e.immortal = false;
  e.period = p;
  e.birth_block = current_block - (phase - quantized);
  return e;
}

Bytes Era::encode() const {
  if (immortal) return {0x00};
  if (!valid_period(period))
    throw UsageError(fmt::format("era period {} must be a power of two from 4 to 65536", period));
  std::uint64_t low = std::clamp<std::uint64_t>(static_cast<std::uint64_t>(std::countr_zero(period)) - 1, 1, 15);
  std::uint64_t phase = birth_block % period;
  auto v = static_cast<std::uint16_t>(low | ((phase / quantize_factor(period)) << 4));
  return {static_cast<std::uint8_t>(v & 0xff), static_cast<std::uint8_t>(v >> 8)};
}

Era Era::decode(scale::Decoder& d) {
  std::uint8_t first = d.u8();
  if (first == 0) return Era{};
  std::uint16_t v = static_cast<std::uint16_t>(first | (d.u8() << 8));
  std::uint64_t period = std::uint64_t{2} << (v % 16);
  std::uint64_t phase = static_cast<std::uint64_t>(v >> 4) * quantize_factor(period);
  if (period < 4 || phase >= period)
    throw scale::DecodeError(fmt::format("invalid mortal era 0x{:04x} (period {}, phase {})", v, period, phase));
  Era e;
  e.immortal = false;
  e.period = period;
  e.birth_block = phase;  // the earliest block with this phase; birth(current) finds the actual one
  return e;
}

std::uint64_t Era::birth(std::uint64_t current) const {
  if (immortal) return 0;
  std::uint64_t phase = birth_block % period;
  return (std::max(current, phase) - phase) / period * period + phase;
}

Era parse_era(std::string_view text) {
  if (text == "immortal") return Era{};
  auto at = text.find('@');
  if (at == std::string_view::npos)
    throw UsageError(fmt::format("--era '{}': use PERIOD@BLOCK (e.g. 64@1000) or immortal", text));
  std::uint64_t period = parse_u64(text.substr(0, at), "period");
  std::uint64_t block = parse_u64(text.substr(at + 1), "block");
  if (!valid_period(period))
    throw UsageError(fmt::format("--era: period {} must be a power of two from 4 to 65536 (e.g. 64)", period));
  return Era::mortal(period, block);
}

// ---- the call ----

Bytes encode_send_message(const Metadata& md, const SendMessageCall& call) {
  const metadata::Pallet& gear = md.pallet_by_name("Gear");
  if (!gear.calls) throw RuntimeError("the runtime's Gear pallet has no calls");
  Value args = {{"destination", to_hex(call.destination)},
                {"payload", to_hex(call.payload)},
                {"gas_limit", call.gas_limit},
                {"value", detail::u128_to_string(call.value)},
                {"keep_alive", call.keep_alive}};
  Bytes out{gear.index};
  Bytes rest;
  try {
    rest = md.encode(*gear.calls, Value{{"send_message", args}});
  } catch (const UsageError& e) {
    throw RuntimeError(fmt::format("the runtime's Gear.send_message does not take the arguments this build sends ({})",
                                   e.what()));
  }
  out.insert(out.end(), rest.begin(), rest.end());
  return out;
}

SendMessageCall decode_send_message(const Metadata& md, ByteView call) {
  Value v = md.decode(md.call_type(), call);
  const Value* args = nullptr;
  if (v.is_object() && v.contains("Gear") && v["Gear"].is_object() && v["Gear"].contains("send_message"))
    args = &v["Gear"]["send_message"];
  if (!args || !args->is_object()) {
    std::string what = v.is_object() && !v.empty() ? v.begin().key() : std::string("?");
    throw RuntimeError(fmt::format("the call is not Gear.send_message (pallet {})", what));
  }
  SendMessageCall c;
  auto dest = hash32_from_hex(args->at("destination").get<std::string>());
  auto payload = from_hex(args->at("payload").get<std::string>());
  auto value = detail::u128_from_json(args->at("value"));
  if (!dest || !payload || !value || !args->at("gas_limit").is_number_unsigned())
    throw RuntimeError("Gear.send_message arguments have an unexpected shape in this runtime");
  c.destination = *dest;
  c.payload = std::move(*payload);
  c.gas_limit = args->at("gas_limit").get<std::uint64_t>();
  c.value = *value;
  c.keep_alive = args->at("keep_alive").get<bool>();
  return c;
}

// ---- extensions and the signing payload ----

Bytes encode_extra(const Metadata& md, const SigningContext& ctx) {
  Bytes out;
  for (const auto& ext : md.signed_extensions()) {
    Bytes b = encode_as(md, ext, ext.type, extra_value(md, ext, kind_of(ext), ctx));
    out.insert(out.end(), b.begin(), b.end());
  }
  return out;
}

Bytes encode_additional(const Metadata& md, const SigningContext& ctx) {
  Bytes out;
  for (const auto& ext : md.signed_extensions()) {
    Bytes b = encode_as(md, ext, ext.additional_signed, additional_value(ext, kind_of(ext), ctx));
    out.insert(out.end(), b.begin(), b.end());
  }
  return out;
}

Bytes signing_payload(const Metadata& md, ByteView call, const SigningContext& ctx) {
  Bytes extra = encode_extra(md, ctx), additional = encode_additional(md, ctx);
  Bytes payload = concat({call, extra, additional});
  if (payload.size() > kMaxUnhashedPayload) {
    Hash32 h = blake2b_256(payload);
    return Bytes(h.begin(), h.end());
  }
  return payload;
}

Bytes build_signed(const Metadata& md, const keys::Keypair& signer, ByteView call, const SigningContext& ctx) {
  check_v4(md);
  keys::Signature sig = signer.sign(signing_payload(md, call, ctx));
  Bytes extra = encode_extra(md, ctx);
  scale::Encoder body;
  body.u8(kSignedV4);
  body.u8(kAddressId);
  body.raw(signer.public_key());
  body.u8(kEd25519);
  body.raw(sig);
  body.raw(extra);
  body.raw(call);
  scale::Encoder out;
  out.compact(body.out().size());
  out.raw(body.out());
  return std::move(out).take();
}

Hash32 extrinsic_hash(ByteView extrinsic) { return blake2b_256(extrinsic); }

// ---- the inverse, for the node side ----

namespace {

void read_extension(const Metadata& md, const SignedExtension& ext, scale::Decoder& d, DecodedExtrinsic& x) {
  Kind k = kind_of(ext);
  Value v = md.decode(ext.type, d);
  switch (k) {
    case Kind::Mortality: {
      Bytes raw = md.encode(ext.type, v);
      scale::Decoder e(raw);
      x.era = Era::decode(e);
      break;
    }
    case Kind::Nonce:
      if (!v.is_number_unsigned()) throw scale::DecodeError("the nonce is not an unsigned integer");
      x.nonce = v.get<std::uint64_t>();
      break;
    case Kind::Tip: {
      auto tip = detail::u128_from_json(v);
      if (!tip) throw scale::DecodeError("the tip is not an unsigned integer");
      x.tip = *tip;
      break;
    }
    case Kind::MetadataHash: {
      Bytes raw = md.encode(ext.type, v);
      x.metadata_hash_mode = raw.empty() ? 0 : raw[0];
      break;
    }
    default: break;
  }
}

}  // namespace

DecodedExtrinsic decode_signed(const Metadata& md, ByteView extrinsic) {
  check_v4(md);
  scale::Decoder d(extrinsic);
  std::uint64_t len = d.compact();
  if (len != d.remaining())
    throw scale::DecodeError(fmt::format("the length prefix says {} bytes but {} follow", len, d.remaining()));
  std::uint8_t version = d.u8();
  if (!(version & 0x80)) throw RuntimeError("the extrinsic is unsigned; only signed extrinsics are accepted");
  if ((version & 0x7f) != 4)
    throw RuntimeError(fmt::format("extrinsic version {} is not supported (only 4)", version & 0x7f));
  if (std::uint8_t addr = d.u8(); addr != kAddressId)
    throw RuntimeError(fmt::format("address kind {} is not supported (only MultiAddress::Id, 0)", addr));
  DecodedExtrinsic x;
  auto signer = d.arr32();
  std::copy(signer.begin(), signer.end(), x.signer.begin());
  if (std::uint8_t kind = d.u8(); kind != kEd25519)
    throw RuntimeError(fmt::format("signature type {} is not supported (only Ed25519, 0)", kind));
  ByteView sig = d.raw(x.signature.size());
  std::copy(sig.begin(), sig.end(), x.signature.begin());
  for (const auto& ext : md.signed_extensions()) read_extension(md, ext, d, x);
  if (d.at_end()) throw scale::DecodeError("the extrinsic has no call");
  ByteView call = d.raw(d.remaining());
  (void)md.decode(md.call_type(), call);  // the call must be one whole, well-formed RuntimeCall
  x.call.assign(call.begin(), call.end());
  return x;
}

bool verify_signed(const Metadata& md, const DecodedExtrinsic& x, std::uint32_t spec_version,
                   std::uint32_t tx_version, const Hash32& genesis, const Hash32& era_block_hash) {
  if (x.metadata_hash_mode != 0) return false;  // we never sign a metadata hash, so we cannot check one
  SigningContext ctx;
  ctx.spec_version = spec_version;
  ctx.tx_version = tx_version;
  ctx.genesis = genesis;
  ctx.era = x.era;
  ctx.era_block_hash = era_block_hash;
  ctx.nonce = x.nonce;
  ctx.tip = x.tip;
  return keys::verify(x.signer, signing_payload(md, x.call, ctx), x.signature);
}

}  // namespace p2p::gear_rpc
