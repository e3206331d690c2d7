// Tests for keys/ed25519: RFC 8032 vectors, and SS58 vectors printed by
// @polkadot/util-crypto 14.0.3 (an independent implementation; see tests/data/README.md).
#include "keys/ed25519.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>
#include <vector>

using namespace p2p;
using namespace p2p::keys;
using ::testing::HasSubstr;

namespace {

template <std::size_t N>
std::array<std::uint8_t, N> arr(std::string_view hex) {
  auto bytes = from_hex(hex);
  EXPECT_TRUE(bytes && bytes->size() == N) << hex;
  std::array<std::uint8_t, N> out{};
  if (bytes && bytes->size() == N) std::copy(bytes->begin(), bytes->end(), out.begin());
  return out;
}

std::string usage_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a UsageError";
  return {};
}

// RFC 8032 section 7.1, TEST 1 and TEST 2.
const char* kRfcSeed1 = "0x9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const char* kRfcPk1 = "0xd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const char* kRfcSig1 =
    "0xe5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
const char* kRfcSeed2 = "0x4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
const char* kRfcPk2 = "0x3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
const char* kRfcSig2 =
    "0x92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
    "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00";

// The second oracle seed, 0x00 01 .. 1f.
const char* kSeq = "0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const char* kSeqPk = "0x03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8";

struct Ss58Vector {
  const char* pk;
  std::uint16_t prefix;
  const char* address;
};

// Outputs of @polkadot/util-crypto encodeAddress(pk, prefix).
const Ss58Vector kSs58Vectors[] = {
    {kRfcPk1, 0, "15sND1xy2556eoAx6eGV6zkURiPJ9T9qJ8XMDHsYTuZezp7f"},
    {kRfcPk1, 42, "5Gw54ghuAHodDGAS91DUxqvKa6PeT9bhDdns3ztBupY8pSyn"},
    {kRfcPk1, 137, "kGkQMcA7hbq2M1CQm3nytePrU659Eb4THjkRjYjgUJsJ3bEcJ"},
    {kRfcPk1, 63, "7NTvVX5NEQAtVVfBABgytmWF9HPpbzpdBPRcyMPWdn2NjAdK"},
    {kRfcPk1, 64, "cEaSZy6Y42YtbJxMTUNvvUHMAb73SApfYTLCKBR1o5wFvjq2G"},
    {kRfcPk1, 16383, "yNaCRxx8uFM7AMC4JC63m7Z3Me46RXfLrAK3ZYc4FCJHChaHn"},
    {kSeqPk, 0, "15kypVvwBLVS1eFtT9tb2ZS2HLXLbsy5iZaddcFzRrm5izi"},
    {kSeqPk, 42, "5C9TqVEs5Q51zUdjvp6tSsjHAfLseJKq1Dq6ULcuSLqEuRSf"},
    {kSeqPk, 137, "kGfckNxefWwHjnQt4qbsJ8RfRge6TnDBRXLTxy5RBqPb9gFFt"},
    {kSeqPk, 63, "7HgKGKcL9WSHGi8UwzaPNoKCjrM3o9YkxyTrPh8EAJKUpFBv"},
    {kSeqPk, 64, "cEVexju51wf9z6ApmGBpKxKA8BfzfMyPgEvEYbkkWcTZ2pnbw"},
    {kSeqPk, 16383, "yNVQpjkfsATNZ8QXbytwAbarKEd3eip4ywu5nxwnxipaJncfD"},
    {"0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d", 0,
     "15oF4uVJwmo4TdGW7VfQxNLavjCXviqxT9S1MgbjMNHr6Sp5"},
    {"0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d", 42,
     "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"},
    {"0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d", 137,
     "kGkLEU3e3XXkJp2WK4eNpVmSab5xUNL9QtmLPh8QfCL2EgotW"},
};

// Replaces one base58 digit with another valid digit, keeping the length.
std::string flip_digit(std::string s, std::size_t i) {
  s[i] = s[i] == 'z' ? 'y' : 'z';
  return s;
}

}  // namespace

TEST(KeysEd25519, Rfc8032Test1EmptyMessage) {
  Keypair kp = Keypair::from_seed(arr<32>(kRfcSeed1));
  EXPECT_EQ(to_hex(kp.public_key()), kRfcPk1);
  Signature sig = kp.sign(ByteView{});
  EXPECT_EQ(to_hex(sig), kRfcSig1);
  EXPECT_TRUE(verify(kp.public_key(), ByteView{}, sig));
}

TEST(KeysEd25519, Rfc8032Test2OneByte) {
  Keypair kp = Keypair::from_seed(arr<32>(kRfcSeed2));
  EXPECT_EQ(to_hex(kp.public_key()), kRfcPk2);
  const std::uint8_t msg[] = {0x72};
  Signature sig = kp.sign(msg);
  EXPECT_EQ(to_hex(sig), kRfcSig2);
  EXPECT_TRUE(verify(kp.public_key(), msg, sig));
}

TEST(KeysEd25519, OracleSeedGivesPolkadotJsPublicKey) {
  EXPECT_EQ(to_hex(Keypair::from_seed(arr<32>(kSeq)).public_key()), kSeqPk);
}

TEST(KeysEd25519, VerifyRejectsTamperedMessageSignatureAndKey) {
  Keypair kp = Keypair::from_seed(arr<32>(kSeq));
  Bytes msg = {1, 2, 3, 4};
  Signature sig = kp.sign(msg);
  ASSERT_TRUE(verify(kp.public_key(), msg, sig));
  Bytes other = msg;
  other[0] ^= 1;
  EXPECT_FALSE(verify(kp.public_key(), other, sig));
  Signature bad = sig;
  bad[10] ^= 0x80;
  EXPECT_FALSE(verify(kp.public_key(), msg, bad));
  EXPECT_FALSE(verify(Keypair::from_seed(arr<32>(kRfcSeed1)).public_key(), msg, sig));
}

TEST(KeysEd25519, GenerateGivesDistinctWorkingKeys) {
  Keypair a = Keypair::generate();
  Keypair b = Keypair::generate();
  EXPECT_NE(a.seed(), b.seed());
  EXPECT_NE(a.public_key(), b.public_key());
  EXPECT_EQ(Keypair::from_seed(a.seed()).public_key(), a.public_key());
  Bytes msg = {9, 9};
  EXPECT_TRUE(verify(a.public_key(), msg, a.sign(msg)));
}

TEST(KeysEd25519, CopiesAndMovesKeepTheKey) {
  Keypair a = Keypair::from_seed(arr<32>(kRfcSeed1));
  Keypair copy = a;
  Keypair moved = std::move(copy);
  Keypair assigned;
  assigned = moved;
  EXPECT_EQ(to_hex(assigned.public_key()), kRfcPk1);
  EXPECT_EQ(to_hex(assigned.sign(ByteView{})), kRfcSig1);
  std::vector<Keypair> many(3, a);
  EXPECT_EQ(to_hex(many[2].seed()), kRfcSeed1);
}

TEST(KeysEd25519, ConcurrentFirstUseIsSafe) {
  std::vector<std::thread> threads;
  std::vector<int> ok(8, 0);
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&ok, i] {
      Keypair kp = Keypair::from_seed(arr<32>(kRfcSeed1));
      ok[static_cast<std::size_t>(i)] = to_hex(kp.sign(ByteView{})) == kRfcSig1;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok, std::vector<int>(8, 1));
}

TEST(KeysSs58, EncodeMatchesPolkadotJs) {
  for (const auto& v : kSs58Vectors)
    EXPECT_EQ(ss58_encode(arr<32>(v.pk), v.prefix), v.address) << v.pk << " prefix " << v.prefix;
}

TEST(KeysSs58, DefaultPrefixIsVara) {
  EXPECT_EQ(ss58_encode(arr<32>(kSeqPk)), "kGfckNxefWwHjnQt4qbsJ8RfRge6TnDBRXLTxy5RBqPb9gFFt");
}

TEST(KeysSs58, DecodeAnyPrefix) {
  for (const auto& v : kSs58Vectors) {
    Ss58Address a = ss58_decode(v.address);
    EXPECT_EQ(to_hex(a.public_key), v.pk) << v.address;
    EXPECT_EQ(a.prefix, v.prefix) << v.address;
  }
}

TEST(KeysSs58, VaraPrefixTakesTwoBytes) {
  // 137 is written as the two bytes 0x62 0x40, so its addresses are one digit longer.
  std::string vara = ss58_encode(arr<32>(kSeqPk), 137);
  std::string generic = ss58_encode(arr<32>(kSeqPk), 42);
  EXPECT_EQ(vara.size(), 49u);     // 2 + 32 + 2 bytes
  EXPECT_EQ(generic.size(), 48u);  // 1 + 32 + 2 bytes
  EXPECT_EQ(vara.substr(0, 2), "kG");
}

TEST(KeysSs58, PrefixOutOfRangeIsRejected) {
  EXPECT_THROW(ss58_encode(arr<32>(kSeqPk), 16384), UsageError);
}

TEST(KeysSs58, EveryCorruptedDigitIsRejected) {
  const std::string good = "kGfckNxefWwHjnQt4qbsJ8RfRge6TnDBRXLTxy5RBqPb9gFFt";
  for (std::size_t i = 0; i < good.size(); ++i)
    EXPECT_THROW(ss58_decode(flip_digit(good, i)), UsageError) << "digit " << i;
}

TEST(KeysSs58, ChecksumErrorHasItsOwnMessage) {
  // The last digit only touches the checksum bytes, so this is a pure checksum failure.
  std::string bad = flip_digit("kGfckNxefWwHjnQt4qbsJ8RfRge6TnDBRXLTxy5RBqPb9gFFt", 48);
  EXPECT_THAT(usage_message([&] { ss58_decode(bad); }), HasSubstr("checksum"));
  EXPECT_THAT(usage_message([&] { parse_address(bad); }), HasSubstr("checksum"));
  EXPECT_THAT(usage_message([&] { parse_address("xyz"); }), ::testing::Not(HasSubstr("checksum")));
}

TEST(KeysSs58, WrongLengthsAndDigitsAreRejected) {
  const std::string good = "5C9TqVEs5Q51zUdjvp6tSsjHAfLseJKq1Dq6ULcuSLqEuRSf";
  EXPECT_THROW(ss58_decode(""), UsageError);
  EXPECT_THROW(ss58_decode(good.substr(0, good.size() - 1)), UsageError);
  EXPECT_THROW(ss58_decode(good + "1"), UsageError);
  EXPECT_THROW(ss58_decode("1"), UsageError);
  EXPECT_THROW(ss58_decode(std::string(5000, 'z')), UsageError);
  EXPECT_THROW(ss58_decode("5C9TqVEs5Q51zUdjvp6tSsjHAfLseJKq1Dq6ULcuSLqEuRS0"), UsageError);  // '0'
  EXPECT_THROW(ss58_decode("5C9TqVEs5Q51zUdjvp6tSsjHAfLseJKq1Dq6ULcuSLqEuRSl"), UsageError);  // 'l'
  EXPECT_THAT(usage_message([&] { ss58_decode("5C9TqVEs5Q51zUdjvp6tSsjHAfLseJKq1Dq6ULcuSLqEuRS0"); }),
              HasSubstr("base58"));
}

TEST(KeysSs58, ValidSs58OfOtherPayloadSizesIsRejected) {
  // encodeAddress() outputs for a 33-byte (ecdsa), an 8-byte and a 1-byte account, prefix 42:
  // their checksums are right, but only 32-byte accounts are ours.
  for (const char* a : {"KW3K2dF255GeTHXDvdMy2fZ9XTLJqAESpkPgyipymjWvGV4CU", "3MsZWNhRvzMGK9", "F7pv"}) {
    EXPECT_THROW(ss58_decode(a), UsageError) << a;
    EXPECT_THROW(parse_address(a), UsageError) << a;
  }
  EXPECT_THROW(ss58_decode("1" + ss58_encode(arr<32>(kSeqPk), 42)), UsageError);  // extra zero byte
}

TEST(KeysAddress, ParsesSs58OfAnyPrefix) {
  for (const auto& v : kSs58Vectors) EXPECT_EQ(to_hex(parse_address(v.address)), v.pk) << v.address;
}

TEST(KeysAddress, ParsesHexWithAndWithoutPrefixAndAnyCase) {
  std::string bare = std::string(kRfcPk1).substr(2);
  EXPECT_EQ(to_hex(parse_address(kRfcPk1)), kRfcPk1);
  EXPECT_EQ(to_hex(parse_address(bare)), kRfcPk1);
  std::string upper = "0X";
  for (char c : bare) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(to_hex(parse_address(upper)), kRfcPk1);
}

TEST(KeysAddress, RejectsOtherFormsWithAHelpfulMessage) {
  std::string msg = usage_message([] { parse_address("xyz"); });
  EXPECT_THAT(msg, HasSubstr("'xyz'"));
  EXPECT_THAT(msg, HasSubstr("SS58"));
  EXPECT_THAT(msg, HasSubstr("0x + 64 hex"));
  std::string hex = kRfcPk1;
  EXPECT_THROW(parse_address(hex.substr(0, hex.size() - 2)), UsageError);  // 31 bytes
  EXPECT_THROW(parse_address(hex + "00"), UsageError);                     // 33 bytes
  EXPECT_THROW(parse_address(hex.substr(0, hex.size() - 1) + "g"), UsageError);
  EXPECT_THROW(parse_address(hex.substr(0, hex.size() - 1)), UsageError);  // odd length
  EXPECT_THROW(parse_address("0x"), UsageError);
  EXPECT_THROW(parse_address(""), UsageError);
  EXPECT_THROW(parse_address(std::string(100000, 'a')), UsageError);
}

TEST(KeysAddress, LongInputIsNotEchoedInFull) {
  std::string msg = usage_message([] { parse_address(std::string(10000, 'z')); });
  EXPECT_LT(msg.size(), 300u);
}

TEST(KeysSeed, ParsesZeroXAnd64Hex) {
  EXPECT_EQ(to_hex(parse_seed(kRfcSeed1)), kRfcSeed1);
  std::string upper = std::string("0X") + "9D61B19DEFFD5A60BA844AF492EC2CC44449C5697B326919703BAC031CAE7F60";
  EXPECT_EQ(to_hex(parse_seed(upper)), kRfcSeed1);
}

TEST(KeysSeed, WrongLengthSaysTheLengthFound) {
  std::string seed = kRfcSeed1;
  EXPECT_THAT(usage_message([&] { parse_seed(seed.substr(0, seed.size() - 2)); }), HasSubstr("62"));
  EXPECT_THAT(usage_message([&] { parse_seed(seed + "ab"); }), HasSubstr("66"));
  EXPECT_THAT(usage_message([&] { parse_seed("0x"); }), HasSubstr("0 hex digits"));
}

TEST(KeysSeed, RejectsMissingPrefixAndNonHexWithoutEchoingTheSeed) {
  std::string bare = std::string(kRfcSeed1).substr(2);
  std::string msg = usage_message([&] { parse_seed(bare); });
  EXPECT_THAT(msg, HasSubstr("0x"));
  EXPECT_THAT(msg, ::testing::Not(HasSubstr("9d61b19d")));
  EXPECT_THROW(parse_seed(std::string(kRfcSeed1).substr(0, 65) + "q"), UsageError);
  EXPECT_THROW(parse_seed(""), UsageError);
}
