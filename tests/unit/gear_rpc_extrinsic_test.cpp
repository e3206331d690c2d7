// Tests for gear_rpc/extrinsic against the real Vara runtime metadata: era vectors (worked out by hand from
// the Substrate rules, see each test), the call and extension bytes against chain.md's table, the signed
// extrinsic round trip, and verify_signed's refusals. The polkadot-js cross-check is gear_rpc_oracle_test.
#include "gear_rpc/extrinsic.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iterator>

#include "util/error.hpp"

namespace p2p::gear_rpc {
namespace {

using ::testing::HasSubstr;

const std::string kVaraMetadata = std::string(P2P_SHARED_DATA) + "/vara_runtime.scale";

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << "cannot open " << path;
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

const metadata::Metadata& vara() {
  static const metadata::Metadata m = metadata::Metadata::parse(read_file(kVaraMetadata));
  return m;
}

Bytes hex(std::string_view h) {
  auto b = from_hex(h);
  EXPECT_TRUE(b) << h;
  return b.value_or(Bytes{});
}

Hash32 filled(std::uint8_t b) {
  Hash32 h;
  h.fill(b);
  return h;
}

keys::Keypair alice() { return keys::Keypair::from_seed(filled(0x42)); }

Era decode_era(std::string_view h) {
  Bytes b = hex(h);
  scale::Decoder d(b);
  Era e = Era::decode(d);
  d.expect_end();
  return e;
}

// ---------------------------------------------------------------------------------------------
// Era. The mortal form is two bytes little-endian: low 4 bits = trailing_zeros(period) - 1 (clamped
// 1..15), high 12 bits = phase / quantize_factor, where quantize_factor = max(period >> 12, 1).

TEST(GearRpcEra, Period64AtBlock1000) {
  // phase = 1000 % 64 = 40; low = tz(64) - 1 = 5; 5 | 40 << 4 = 645 = 0x0285 -> 85 02.
  Era e = Era::mortal(64, 1000);
  EXPECT_FALSE(e.immortal);
  EXPECT_EQ(e.period, 64u);
  EXPECT_EQ(e.birth_block, 1000u);
  EXPECT_EQ(to_hex(e.encode()), "0x8502");
}

TEST(GearRpcEra, Period4096AtBlock1000) {
  // phase = 1000 (below the period); quantize factor 4096 >> 12 = 1; low = 12 - 1 = 11;
  // 11 | 1000 << 4 = 16011 = 0x3e8b -> 8b 3e.
  EXPECT_EQ(to_hex(Era::mortal(4096, 1000).encode()), "0x8b3e");
}

TEST(GearRpcEra, SubstrateCodecVectors) {
  // sp_runtime::generic::Era's own tests: mortal(64, 42) encodes [5 + 42 % 16 * 16, 42 / 16] and
  // mortal(32768, 20000) [14 + 2500 % 16 * 16, 2500 / 16] (quantize factor 8: 20000 / 8 = 2500).
  EXPECT_EQ(Era::mortal(64, 42).encode(), (Bytes{5 + 42 % 16 * 16, 42 / 16}));
  EXPECT_EQ(Era::mortal(32768, 20000).encode(), (Bytes{14 + 2500 % 16 * 16, 2500 / 16}));
  EXPECT_EQ(to_hex(Era{}.encode()), "0x00");
}

TEST(GearRpcEra, PeriodIsRoundedAndClamped) {
  // 200 -> 256, 513 % 256 = 1; 2 -> 4; huge -> 65536 with quantize factor 16.
  Era a = Era::mortal(200, 513);
  EXPECT_EQ(a.period, 256u);
  EXPECT_EQ(a.birth_block % a.period, 1u);
  EXPECT_EQ(Era::mortal(2, 1).period, 4u);
  EXPECT_EQ(Era::mortal(4, 5).birth_block % 4, 1u);
  // 1000005 % 65536 = 16965, quantized down to a multiple of 16: 16960, so the era starts at 1000000.
  Era big = Era::mortal(1u << 20, 1000005);
  EXPECT_EQ(big.period, 65536u);
  EXPECT_EQ(big.birth_block, 1000000u);
  EXPECT_EQ(big.encode(), (Bytes{static_cast<std::uint8_t>(15 | (1060 % 16) << 4), static_cast<std::uint8_t>(1060 / 16)}));
}

TEST(GearRpcEra, DecodeGivesPeriodPhaseAndBirth) {
  Era e = decode_era("0x8502");
  EXPECT_FALSE(e.immortal);
  EXPECT_EQ(e.period, 64u);
  EXPECT_EQ(e.birth_block % 64, 40u);
  EXPECT_EQ(e.birth(1000), 1000u);
  EXPECT_EQ(e.birth(1063), 1000u);  // still the same era
  EXPECT_EQ(e.birth(1064), 1064u);  // the next one
  EXPECT_EQ(e.birth(10), 40u);      // before the first block of that phase
  EXPECT_TRUE(decode_era("0x00").immortal);
  // Round trips for every period.
  for (std::uint64_t p = 4; p <= 65536; p *= 2) {
    Era m = Era::mortal(p, 123456789);
    Bytes b = m.encode();
    scale::Decoder d(b);
    Era back = Era::decode(d);
    EXPECT_EQ(back.period, p);
    EXPECT_EQ(back.birth(123456789), m.birth_block) << p;
  }
}

TEST(GearRpcEra, DecodeRejectsMalformedEras) {
  EXPECT_THROW(decode_era("0x85"), scale::DecodeError);    // one byte of two
  EXPECT_THROW(decode_era("0x1000"), scale::DecodeError);  // low nibble 0: period 2
  EXPECT_THROW(decode_era("0x4100"), scale::DecodeError);  // period 4, phase 4
}

TEST(GearRpcEra, ParseEraFlag) {
  EXPECT_TRUE(parse_era("immortal").immortal);
  Era e = parse_era("64@1000");
  EXPECT_EQ(e.period, 64u);
  EXPECT_EQ(e.birth_block, 1000u);
  for (const char* bad : {"", "64", "64@", "@5", "63@1000", "2@10", "131072@1", "x@1", "64@1e3", "-64@1"})
    EXPECT_THROW(parse_era(bad), UsageError) << bad;
}

TEST(GearRpcEra, EncodeRejectsAnInvalidPeriod) {
  Era e;
  e.immortal = false;
  e.period = 100;
  EXPECT_THROW(e.encode(), UsageError);
}

// ---------------------------------------------------------------------------------------------
// The call

TEST(GearRpcExtrinsic, SendMessageCallBytes) {
  SendMessageCall c{filled(0x5c), hex("0x0102ff"), 0x0102030405060708ull, 0x11, true};
  // 0x68 0x03 ++ destination ++ Compact(3) payload ++ gas u64 LE ++ value u128 LE ++ keep_alive.
  Bytes want = concat({hex("0x6803"), filled(0x5c), hex("0x0c0102ff"), hex("0x0807060504030201"),
                       hex("0x11000000000000000000000000000000"), hex("0x01")});
  Bytes got = encode_send_message(vara(), c);
  EXPECT_EQ(to_hex(got), to_hex(want));
  SendMessageCall back = decode_send_message(vara(), got);
  EXPECT_EQ(back.destination, c.destination);
  EXPECT_EQ(back.payload, c.payload);
  EXPECT_EQ(back.gas_limit, c.gas_limit);
  EXPECT_TRUE(back.value == c.value);
  EXPECT_TRUE(back.keep_alive);
}

TEST(GearRpcExtrinsic, LargeValueUsesAllSixteenBytes) {
  SendMessageCall c{filled(1), {}, 0, ~scale::u128{0}, false};
  Bytes got = encode_send_message(vara(), c);
  ASSERT_EQ(got.size(), 2 + 32 + 1 + 8 + 16 + 1u);
  EXPECT_TRUE(std::all_of(got.begin() + 43, got.begin() + 59, [](auto b) { return b == 0xff; }));
  EXPECT_TRUE(decode_send_message(vara(), got).value == ~scale::u128{0});
}

TEST(GearRpcExtrinsic, DecodeRefusesOtherCalls) {
  // System.remark (pallet 0, call 0) with an empty Vec<u8>.
  auto [pallet, call] = vara().call_index("System", "remark");
  EXPECT_THAT([&] { decode_send_message(vara(), Bytes{pallet, call, 0x00}); },
              ::testing::ThrowsMessage<RuntimeError>(HasSubstr("not Gear.send_message")));
  EXPECT_THROW(decode_send_message(vara(), hex("0x6803")), scale::DecodeError);
}

// ---------------------------------------------------------------------------------------------
// Extensions and the signing payload

SigningContext context(Era era = {}) {
  SigningContext ctx;
  ctx.spec_version = 1800;
  ctx.tx_version = 1;
  ctx.genesis = filled(0xfe);
  ctx.era = era;
  ctx.era_block_hash = era.immortal ? ctx.genesis : filled(0xbb);
  ctx.nonce = 5;
  ctx.tip = 0;
  return ctx;
}

TEST(GearRpcExtrinsic, ExtraAndAdditionalFollowChainMdTable) {
  // Immortal: era 00, Compact nonce 5 = 0x14, Compact tip 0 = 00, mode 00; nothing for the others.
  EXPECT_EQ(to_hex(encode_extra(vara(), context())), "0x00140000");
  // spec u32 ++ tx u32 ++ genesis ++ (immortal: genesis) ++ Option None.
  Bytes want = concat({hex("0x08070000"), hex("0x01000000"), filled(0xfe), filled(0xfe), hex("0x00")});
  EXPECT_EQ(to_hex(encode_additional(vara(), context())), to_hex(want));
}

TEST(GearRpcExtrinsic, MortalExtraAndAdditional) {
  SigningContext ctx = context(Era::mortal(64, 1000));
  ctx.nonce = 70000;   // Compact: four-byte mode, 70000 << 2 | 2 = 280002 = 0x000445c2
  ctx.tip = 1000;      // Compact: two-byte mode, 1000 << 2 | 1 = 4001 = 0x0fa1
  EXPECT_EQ(to_hex(encode_extra(vara(), ctx)), "0x8502c2450400a10f00");
  Bytes want = concat({hex("0x08070000"), hex("0x01000000"), filled(0xfe), filled(0xbb), hex("0x00")});
  EXPECT_EQ(to_hex(encode_additional(vara(), ctx)), to_hex(want));
}

TEST(GearRpcExtrinsic, NonceMustFitTheRuntimesType) {
  SigningContext ctx = context();
  ctx.nonce = std::uint64_t{1} << 32;  // CheckNonce is Compact<u32> in Vara
  EXPECT_THROW(encode_extra(vara(), ctx), RuntimeError);
}

TEST(GearRpcExtrinsic, ShortPayloadIsSignedAsIs) {
  Bytes call = encode_send_message(vara(), {filled(7), hex("0x00"), 1, 0, false});
  SigningContext ctx = context();
  Bytes p = signing_payload(vara(), call, ctx);
  EXPECT_EQ(p, concat({call, encode_extra(vara(), ctx), encode_additional(vara(), ctx)}));
  EXPECT_LE(p.size(), 256u);
}

TEST(GearRpcExtrinsic, PayloadOver256BytesIsHashed) {
  Bytes call = encode_send_message(vara(), {filled(7), Bytes(300, 0xab), 1, 0, false});
  SigningContext ctx = context(Era::mortal(64, 1000));
  Bytes whole = concat({call, encode_extra(vara(), ctx), encode_additional(vara(), ctx)});
  ASSERT_GT(whole.size(), 256u);
  Bytes p = signing_payload(vara(), call, ctx);
  Hash32 h = blake2b_256(whole);
  EXPECT_EQ(p, Bytes(h.begin(), h.end()));
  // The boundary: a payload of exactly 256 bytes is signed as is, 257 is hashed.
  auto unhashed = [&](std::size_t n) {
    Bytes c = encode_send_message(vara(), {filled(7), Bytes(n, 1), 1, 0, false});
    return std::make_pair(c, concat({c, encode_extra(vara(), ctx), encode_additional(vara(), ctx)}).size());
  };
  bool hit = false;
  for (std::size_t n = 0; n < 256 && !hit; ++n) {
    auto [c, size] = unhashed(n);
    if (size != 256) continue;
    hit = true;
    EXPECT_EQ(signing_payload(vara(), c, ctx).size(), 256u);
    auto [c2, size2] = unhashed(n + 1);
    ASSERT_EQ(size2, 257u);
    EXPECT_EQ(signing_payload(vara(), c2, ctx).size(), 32u);
  }
  EXPECT_TRUE(hit) << "no payload length gives exactly 256 bytes";
}

TEST(GearRpcExtrinsic, UnknownExtensionIsRefusedByName) {
  // The real metadata with CheckWeight renamed: we must not sign for an extension we cannot explain.
  Bytes blob = read_file(kVaraMetadata);
  std::string needle = "CheckWeight";
  // The registry's type paths come first in the blob; the extension list's identifier is the last match.
  auto it = std::find_end(blob.begin(), blob.end(), needle.begin(), needle.end());
  ASSERT_NE(it, blob.end());
  *(it + 10) = 'X';
  auto md = metadata::Metadata::parse(blob);
  EXPECT_THAT([&] { encode_extra(md, context()); },
              ::testing::ThrowsMessage<RuntimeError>(HasSubstr("CheckWeighX")));
}

// ---------------------------------------------------------------------------------------------
// Signed extrinsic round trip and verification

struct Built {
  Bytes call, xt;
  SigningContext ctx;
};

Built build(Era era, std::size_t payload_len = 40) {
  Built b;
  Bytes payload(payload_len);
  for (std::size_t i = 0; i < payload_len; ++i) payload[i] = static_cast<std::uint8_t>(i * 7);
  b.call = encode_send_message(vara(), {filled(0x5c), payload, 12345678, 0, false});
  b.ctx = context(era);
  b.xt = build_signed(vara(), alice(), b.call, b.ctx);
  return b;
}

TEST(GearRpcExtrinsic, SignedLayoutMatchesChainMd) {
  Built b = build(Era{});
  scale::Decoder d(b.xt);
  std::uint64_t len = d.compact();
  EXPECT_EQ(len, d.remaining());
  Bytes body(b.xt.begin() + static_cast<std::ptrdiff_t>(b.xt.size() - d.remaining()), b.xt.end());
  ASSERT_GT(body.size(), 1 + 33 + 65u);
  EXPECT_EQ(body[0], 0x84);
  EXPECT_EQ(body[1], 0x00);  // MultiAddress::Id
  EXPECT_TRUE(std::equal(body.begin() + 2, body.begin() + 34, alice().public_key().begin()));
  EXPECT_EQ(body[34], 0x00);  // Ed25519
  Bytes tail(body.begin() + 99, body.end());
  EXPECT_EQ(tail, concat({encode_extra(vara(), b.ctx), b.call}));
  // The signature is ed25519 over the signing payload.
  keys::Signature sig;
  std::copy(body.begin() + 35, body.begin() + 99, sig.begin());
  EXPECT_TRUE(keys::verify(alice().public_key(), signing_payload(vara(), b.call, b.ctx), sig));
  EXPECT_EQ(extrinsic_hash(b.xt), blake2b_256(b.xt));
}

TEST(GearRpcExtrinsic, DecodeSignedRoundTrip) {
  for (Era era : {Era{}, Era::mortal(64, 1000)}) {
    for (std::size_t len : {std::size_t{3}, std::size_t{400}}) {
      Built b = build(era, len);
      DecodedExtrinsic x = decode_signed(vara(), b.xt);
      EXPECT_EQ(x.signer, alice().public_key());
      EXPECT_EQ(x.era.immortal, era.immortal);
      EXPECT_EQ(x.era.period, era.period);
      EXPECT_EQ(x.nonce, 5u);
      EXPECT_TRUE(x.tip == 0);
      EXPECT_EQ(x.metadata_hash_mode, 0);
      EXPECT_EQ(x.call, b.call);
      EXPECT_EQ(decode_send_message(vara(), x.call).payload.size(), len);
      EXPECT_TRUE(verify_signed(vara(), x, 1800, 1, filled(0xfe), b.ctx.era_block_hash));
    }
  }
}

TEST(GearRpcExtrinsic, VerifyRejectsTampering) {
  Built b = build(Era::mortal(64, 1000));
  DecodedExtrinsic x = decode_signed(vara(), b.xt);
  const Hash32 g = filled(0xfe), eh = filled(0xbb);
  ASSERT_TRUE(verify_signed(vara(), x, 1800, 1, g, eh));
  EXPECT_FALSE(verify_signed(vara(), x, 1801, 1, g, eh)) << "wrong spec version";
  EXPECT_FALSE(verify_signed(vara(), x, 1800, 2, g, eh)) << "wrong tx version";
  EXPECT_FALSE(verify_signed(vara(), x, 1800, 1, filled(0xfd), eh)) << "wrong genesis";
  EXPECT_FALSE(verify_signed(vara(), x, 1800, 1, g, filled(0xbc))) << "wrong era block";
  // One flipped bit anywhere that still decodes: the signature, the payload, the nonce.
  for (std::size_t byte : {std::size_t{40}, b.xt.size() - 5}) {
    Bytes t = b.xt;
    t[byte] ^= 0x01;
    DecodedExtrinsic y = decode_signed(vara(), t);
    EXPECT_FALSE(verify_signed(vara(), y, 1800, 1, g, eh)) << "flipped byte " << byte;
  }
  DecodedExtrinsic z = x;
  z.nonce = 6;
  EXPECT_FALSE(verify_signed(vara(), z, 1800, 1, g, eh));
  z = x;
  z.metadata_hash_mode = 1;
  EXPECT_FALSE(verify_signed(vara(), z, 1800, 1, g, eh));
}

TEST(GearRpcExtrinsic, DecodeSignedRefusals) {
  Built b = build(Era{});
  auto with = [&](std::size_t at, std::uint8_t v) {
    Bytes t = b.xt;
    t[at] = v;
    return t;
  };
  std::size_t start = b.xt.size() - [&] { scale::Decoder d(b.xt); d.compact(); return d.remaining(); }();
  EXPECT_THAT([&] { decode_signed(vara(), with(start, 0x04)); },
              ::testing::ThrowsMessage<RuntimeError>(HasSubstr("unsigned")));
  EXPECT_THAT([&] { decode_signed(vara(), with(start, 0x85)); },
              ::testing::ThrowsMessage<RuntimeError>(HasSubstr("version 5")));
  EXPECT_THAT([&] { decode_signed(vara(), with(start + 34, 0x01)); },
              ::testing::ThrowsMessage<RuntimeError>(HasSubstr("signature type 1")));
  EXPECT_THROW(decode_signed(vara(), with(start + 1, 0x03)), RuntimeError);  // MultiAddress::Address32
  // Length prefix disagreeing with the bytes, truncation at every point, an empty input.
  Bytes longer = b.xt;
  longer.push_back(0);
  EXPECT_THROW(decode_signed(vara(), longer), scale::DecodeError);
  for (std::size_t n = 0; n < b.xt.size(); ++n) {
    Bytes cut(b.xt.begin(), b.xt.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_THROW(decode_signed(vara(), cut), Error) << n;
  }
  // A bad era inside: period 2.
  EXPECT_THROW(decode_signed(vara(), with(start + 99, 0x10)), scale::DecodeError);
}

TEST(GearRpcExtrinsic, TruncatedBodyWithMatchingLengthPrefix) {
  // Re-prefix a truncated body so only the inner structure is wrong.
  Built b = build(Era::mortal(64, 1000));
  scale::Decoder d(b.xt);
  d.compact();
  Bytes body(b.xt.end() - static_cast<std::ptrdiff_t>(d.remaining()), b.xt.end());
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{34}, std::size_t{99}, std::size_t{101}, body.size() - 1}) {
    scale::Encoder e;
    e.compact(n);
    e.raw(ByteView(body.data(), n));
    EXPECT_THROW(decode_signed(vara(), e.out()), Error) << n;
  }
}

}  // namespace
}  // namespace p2p::gear_rpc
