// Tests for scale/codec: exact bytes of every integer form, and the strict decoder's refusals.
#include <gtest/gtest.h>

#include <limits>

#include "scale/codec.hpp"

namespace p2p::scale {
namespace {

Bytes hex(std::string_view h) {
  auto b = from_hex(h);
  if (!b) throw std::invalid_argument("bad hex in test");
  return *b;
}

std::string compact_hex(std::uint64_t v) {
  Encoder e;
  e.compact(v);
  return to_hex(e.out());
}

std::uint64_t decode_compact(std::string_view h) {
  Bytes b = hex(h);
  Decoder d(b);
  auto v = d.compact();
  d.expect_end();
  return v;
}

// ---- compact integers ----

struct CompactCase {
  std::uint64_t value;
  const char* bytes;
};

class ScaleCompactBoundary : public ::testing::TestWithParam<CompactCase> {};

TEST_P(ScaleCompactBoundary, EncodesExactBytes) { EXPECT_EQ(compact_hex(GetParam().value), GetParam().bytes); }

TEST_P(ScaleCompactBoundary, DecodesBack) { EXPECT_EQ(decode_compact(GetParam().bytes), GetParam().value); }

INSTANTIATE_TEST_SUITE_P(
    ScaleBoundaries, ScaleCompactBoundary,
    ::testing::Values(CompactCase{0, "0x00"}, CompactCase{1, "0x04"}, CompactCase{63, "0xfc"},
                      CompactCase{64, "0x0101"}, CompactCase{16383, "0xfdff"}, CompactCase{16384, "0x02000100"},
                      CompactCase{(1ULL << 30) - 1, "0xfeffffff"}, CompactCase{1ULL << 30, "0x0300000040"},
                      CompactCase{(1ULL << 32) - 1, "0x03ffffffff"}, CompactCase{1ULL << 32, "0x070000000001"},
                      CompactCase{1ULL << 56, "0x130000000000000001"},
                      CompactCase{std::numeric_limits<std::uint64_t>::max(), "0x13ffffffffffffffff"}));

TEST(ScaleCompact, Compact128Maximum) {
  Encoder e;
  e.compact128(~u128{0});
  EXPECT_EQ(to_hex(e.out()), "0x33" + std::string(32, 'f'));
  Decoder d(e.out());
  EXPECT_TRUE(d.compact128() == ~u128{0});
  EXPECT_TRUE(d.at_end());
}

TEST(ScaleCompact, Compact128BeyondU64) {
  Encoder e;
  e.compact128(u128{1} << 64);
  EXPECT_EQ(to_hex(e.out()), "0x17000000000000000001");
  Decoder d(e.out());
  EXPECT_TRUE(d.compact128() == (u128{1} << 64));
  // The same bytes do not fit a u64 compact.
  Decoder narrow(e.out());
  EXPECT_THROW(narrow.compact(), DecodeError);
}

class ScaleCompactNonCanonical : public ::testing::TestWithParam<const char*> {};

TEST_P(ScaleCompactNonCanonical, IsRejected) {
  Bytes b = hex(GetParam());
  Decoder d(b);
  EXPECT_THROW(d.compact(), DecodeError) << GetParam();
  Decoder d128(b);
  EXPECT_THROW(d128.compact128(), DecodeError) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(ScaleForms, ScaleCompactNonCanonical,
                         ::testing::Values("0x0100",            // 0 in two-byte mode
                                           "0xfd00",            // 63 in two-byte mode
                                           "0x02000000",        // 0 in four-byte mode
                                           "0xfeff0000",        // 16383 in four-byte mode
                                           "0x0340000000",      // 64 in big mode (zero top byte)
                                           "0x0300000001",      // 2^24 in big mode: top byte set, still < 2^30
                                           "0x03ffffff3f",      // 2^30-1 in big mode
                                           "0x070000004000",    // 2^30 with a zero top byte
                                           "0x0b000000000000",  // zero in six-byte big mode
                                           "0x13ffffffffffffff00"));  // 2^56-1 padded to 8 bytes

TEST(ScaleCompact, RejectsTooWideForU64) {
  // 9 value bytes cannot be a u64.
  Bytes b = hex("0x17ffffffffffffffff01");
  Decoder d(b);
  EXPECT_THROW(d.compact(), DecodeError);
}

TEST(ScaleCompact, RejectsTooWideForU128) {
  // Prefix 0xff announces 67 bytes, more than any u128.
  Bytes b(68, 0xff);
  Decoder d(b);
  EXPECT_THROW(d.compact128(), DecodeError);
}

TEST(ScaleCompact, RejectsTruncated) {
  for (const char* h : {"0x", "0x01", "0x020000", "0x03000000", "0x13ffffffffffffff"}) {
    Bytes b = hex(h);
    Decoder d(b);
    EXPECT_THROW(d.compact(), DecodeError) << h;
  }
}

// ---- fixed-width integers and bool ----

TEST(ScaleFixed, LittleEndian) {
  Encoder e;
  e.u8(0xab);
  e.u16(0x1234);
  e.u32(0x89abcdef);
  e.u64(0x0102030405060708ULL);
  e.u128((u128{0x1112131415161718ULL} << 64) | 0x191a1b1c1d1e1f20ULL);
  EXPECT_EQ(to_hex(e.out()),
            "0xab"
            "3412"
            "efcdab89"
            "0807060504030201"
            "201f1e1d1c1b1a191817161514131211");
  Decoder d(e.out());
  EXPECT_EQ(d.u8(), 0xab);
  EXPECT_EQ(d.u16(), 0x1234);
  EXPECT_EQ(d.u32(), 0x89abcdefU);
  EXPECT_EQ(d.u64(), 0x0102030405060708ULL);
  EXPECT_TRUE(d.u128() == ((u128{0x1112131415161718ULL} << 64) | 0x191a1b1c1d1e1f20ULL));
  EXPECT_NO_THROW(d.expect_end());
}

TEST(ScaleFixed, TruncatedThrows) {
  Bytes b = hex("0x010203");
  Decoder d(b);
  EXPECT_THROW(d.u32(), DecodeError);
  Decoder d2(b);
  EXPECT_THROW(d2.u64(), DecodeError);
  Decoder d3(b);
  EXPECT_THROW(d3.arr32(), DecodeError);
}

TEST(ScaleFixed, BoolOnlyZeroOrOne) {
  Encoder e;
  e.boolean(true);
  e.boolean(false);
  EXPECT_EQ(to_hex(e.out()), "0x0100");
  Bytes b = hex("0x010002");
  Decoder d(b);
  EXPECT_TRUE(d.boolean());
  EXPECT_FALSE(d.boolean());
  EXPECT_THROW(d.boolean(), DecodeError);
}

// ---- strings, byte vectors, options, vectors ----

TEST(ScaleString, EncodesLengthAndBytes) {
  Encoder e;
  e.str("abc");
  e.str("");
  e.bytes(hex("0xdeadbeef"));
  EXPECT_EQ(to_hex(e.out()), "0x0c61626300" "10deadbeef");
  Decoder d(e.out());
  EXPECT_EQ(d.str(), "abc");
  EXPECT_EQ(d.str(), "");
  EXPECT_EQ(d.bytes(), hex("0xdeadbeef"));
  EXPECT_TRUE(d.at_end());
}

TEST(ScaleString, LongStringUsesTwoByteLength) {
  std::string s(100, 'x');
  Encoder e;
  e.str(s);
  ASSERT_EQ(e.out().size(), 102u);
  EXPECT_EQ(e.out()[0], 0x91);  // 100 << 2 | 1
  EXPECT_EQ(e.out()[1], 0x01);
  Decoder d(e.out());
  EXPECT_EQ(d.str(), s);
}

TEST(ScaleString, ValidUtf8Accepted) {
  // é€, U+10FFFF and an emoji, each stored as raw bytes behind a length.
  const std::string samples[] = {"\xc3\xa9\xe2\x82\xac", "\xf4\x8f\xbf\xbf", "\xf0\x9f\x98\x80"};
  Encoder e;
  for (const auto& s : samples) e.bytes(view(s));
  EXPECT_EQ(to_hex(e.out()), "0x14c3a9e282ac10f48fbfbf10f09f9880");
  Decoder d(e.out());
  for (const auto& s : samples) EXPECT_EQ(d.str(), s);
  EXPECT_TRUE(d.at_end());
}

class ScaleStringInvalidUtf8 : public ::testing::TestWithParam<const char*> {};

TEST_P(ScaleStringInvalidUtf8, IsRejected) {
  Bytes body = hex(GetParam());
  Encoder e;
  e.bytes(body);  // same layout as a String
  Decoder d(e.out());
  EXPECT_THROW(d.str(), DecodeError) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(ScaleSequences, ScaleStringInvalidUtf8,
                         ::testing::Values("0xff",          // never valid
                                           "0x80",          // lone continuation byte
                                           "0xc080",        // overlong NUL
                                           "0xc1bf",        // overlong
                                           "0xe08080",      // overlong three-byte
                                           "0xeda080",      // UTF-16 surrogate
                                           "0xf4908080",    // above U+10FFFF
                                           "0xf5808080",    // lead byte out of range
                                           "0xe282",        // truncated sequence
                                           "0x61e2826162",  // truncated in the middle
                                           "0xc3"));        // truncated at the end

TEST(ScaleString, LengthBeyondInputRejectedWithoutAllocating) {
  // Length 2^64-1 with three bytes behind it: must be a DecodeError, not bad_alloc or length_error.
  Bytes b = hex("0x13ffffffffffffffff616263");
  Decoder d(b);
  EXPECT_THROW(d.str(), DecodeError);
  Decoder d2(b);
  EXPECT_THROW(d2.bytes(), DecodeError);
  // One more than is left.
  Bytes b2 = hex("0x10616263");
  Decoder d3(b2);
  EXPECT_THROW(d3.str(), DecodeError);
}

TEST(ScaleVec, HugeLengthRejectedWithoutAllocating) {
  Bytes b = hex("0x13ffffffffffffff7f00");
  Decoder d(b);
  EXPECT_THROW(d.vec<std::uint8_t>([](Decoder& x) { return x.u8(); }), DecodeError);
  // 3 items of 32 bytes cannot fit in 64 bytes.
  Bytes b2(65, 0);
  b2[0] = 3 << 2;
  Decoder d2(b2);
  auto get32 = [](Decoder& x) { return x.arr32(); };
  using Arr = std::array<std::uint8_t, 32>;
  EXPECT_THROW(d2.vec<Arr>(get32, 32), DecodeError);
}

TEST(ScaleVec, RoundTrip) {
  std::vector<std::uint32_t> v{1, 2, 0xffffffff};
  Encoder e;
  e.vec(v, [](Encoder& x, std::uint32_t n) { x.u32(n); });
  EXPECT_EQ(to_hex(e.out()), "0x0c0100000002000000ffffffff");
  Decoder d(e.out());
  EXPECT_EQ(d.vec<std::uint32_t>([](Decoder& x) { return x.u32(); }, 4), v);
  EXPECT_TRUE(d.at_end());
}

TEST(ScaleOption, TagsAndBadTag) {
  Encoder e;
  e.option(std::optional<std::uint64_t>{}, [](Encoder& x, std::uint64_t n) { x.u64(n); });
  e.option(std::optional<std::uint64_t>{5}, [](Encoder& x, std::uint64_t n) { x.u64(n); });
  EXPECT_EQ(to_hex(e.out()), "0x00010500000000000000");
  auto get = [](Decoder& x) { return x.u64(); };
  Decoder d(e.out());
  EXPECT_EQ(d.option<std::uint64_t>(get), std::nullopt);
  EXPECT_EQ(d.option<std::uint64_t>(get), 5u);
  Bytes bad = hex("0x020500000000000000");
  Decoder d2(bad);
  EXPECT_THROW(d2.option<std::uint64_t>(get), DecodeError);
}

TEST(ScaleDecoder, ExpectEndRejectsTrailingBytes) {
  Bytes b = hex("0x0400");
  Decoder d(b);
  EXPECT_EQ(d.compact(), 1u);
  EXPECT_FALSE(d.at_end());
  EXPECT_EQ(d.remaining(), 1u);
  EXPECT_THROW(d.expect_end(), DecodeError);
  d.u8();
  EXPECT_NO_THROW(d.expect_end());
}

TEST(ScaleDecoder, RawIsBounded) {
  Bytes b = hex("0x010203");
  Decoder d(b);
  EXPECT_THROW(d.raw(4), DecodeError);
  EXPECT_EQ(d.position(), 0u);  // a failed read consumes nothing
  ByteView all = d.raw(3);
  EXPECT_EQ(Bytes(all.begin(), all.end()), b);
  EXPECT_TRUE(d.at_end());
}

TEST(ScaleDecoder, ErrorSaysMalformed) {
  Bytes b = hex("0x02");
  Decoder d(b);
  try {
    d.boolean();
    FAIL() << "expected a DecodeError";
  } catch (const DecodeError& e) {
    EXPECT_NE(std::string(e.what()).find("malformed SCALE data"), std::string::npos);
    EXPECT_EQ(e.code(), Exit::runtime);
  }
}

}  // namespace
}  // namespace p2p::scale
