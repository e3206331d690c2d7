// The @polkadot/types oracle for gear_rpc/extrinsic: tests/js/check_extrinsic.mjs decodes what our C++ builds
// with the real Vara metadata and verifies the signature over the payload polkadot-js builds itself, which
// proves our signing payload matches theirs byte for byte. It also encodes eras for a comparison.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "gear_rpc/detail.hpp"
#include "gear_rpc/extrinsic.hpp"

namespace p2p::gear_rpc {
namespace {

using nlohmann::json;

const std::string kVaraMetadata = std::string(P2P_SHARED_DATA) + "/vara_runtime.scale";
const std::string kJsDir = std::string(P2P_TEST_DATA) + "/../js";

const metadata::Metadata& vara() {
  static const metadata::Metadata m = [] {
    std::ifstream in(kVaraMetadata, std::ios::binary);
    return metadata::Metadata::parse(Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
  }();
  return m;
}

Hash32 filled(std::uint8_t b) {
  Hash32 h;
  h.fill(b);
  return h;
}

struct Case {
  std::optional<std::pair<std::uint64_t, std::uint64_t>> era;  // period, current block
  std::size_t payload_len;
  std::uint64_t nonce;
  scale::u128 tip;
  scale::u128 value;
  bool keep_alive;
};

json build_case(const Case& c, std::uint8_t seed) {
  keys::Keypair signer = keys::Keypair::from_seed(filled(seed));
  Bytes payload(c.payload_len);
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<std::uint8_t>(i * 13 + seed);
  SendMessageCall call{filled(0x5c), payload, 98765432109ull, c.value, c.keep_alive};
  SigningContext ctx;
  ctx.spec_version = 1800;
  ctx.tx_version = 2;
  ctx.genesis = *hash32_from_hex("0xfe1b4c55fd4d668101126434206571a7838a8b6b93a6d1b95d607e78e6c53763");
  ctx.nonce = c.nonce;
  ctx.tip = c.tip;
  if (c.era) {
    ctx.era = Era::mortal(c.era->first, c.era->second);
    ctx.era_block_hash = filled(static_cast<std::uint8_t>(seed + 1));
  } else {
    ctx.era_block_hash = ctx.genesis;
  }
  Bytes xt = build_signed(vara(), signer, encode_send_message(vara(), call), ctx);
  json era = c.era ? json{{"period", c.era->first}, {"current", c.era->second}} : json(nullptr);
  return {{"hex", to_hex(xt)},
          {"hash", to_hex(extrinsic_hash(xt))},
          {"signer", to_hex(signer.public_key())},
          {"genesis", to_hex(ctx.genesis)},
          {"blockHash", to_hex(ctx.era_block_hash)},
          {"specVersion", ctx.spec_version},
          {"txVersion", ctx.tx_version},
          {"era", era},
          {"nonce", c.nonce},
          {"tip", detail::u128_to_string(c.tip)},
          {"dest", to_hex(call.destination)},
          {"payload", to_hex(payload)},
          {"gasLimit", std::to_string(call.gas_limit)},
          {"value", detail::u128_to_string(c.value)},
          {"keepAlive", c.keep_alive}};
}

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  if (pclose(p) != 0) out = "FAILED: " + out;
  return out;
}

TEST(GearRpcOracle, PolkadotJsDecodesAndVerifiesOurExtrinsics) {
  if (std::system("command -v node >/dev/null 2>&1") != 0)
    GTEST_FAIL() << "node is not installed; install Node.js >= 18 and run `npm ci --prefix tests/js`";
  if (!std::filesystem::exists(kJsDir + "/node_modules/@polkadot/types"))
    GTEST_FAIL() << "tests/js/node_modules is missing; run `npm ci --prefix tests/js`";

  const std::vector<Case> cases = {
      {std::nullopt, 44, 0, 0, 0, false},                       // immortal, short
      {std::make_pair(64, 1000), 44, 7, 0, 0, false},           // mortal 64, short
      {std::make_pair(64, 123457), 400, 70000, 0, 0, false},    // mortal, payload > 256 bytes: hashed
      {std::nullopt, 300, 1u << 20, 1000, 5, true},             // immortal, long, tip, value, keep_alive
      {std::make_pair(32768, 20000), 10, 1, 0, ~scale::u128{0}, false},  // quantized phase, max value
  };
  json input = {{"cases", json::array()}, {"eras", json::array()}};
  for (std::size_t i = 0; i < cases.size(); ++i)
    input["cases"].push_back(build_case(cases[i], static_cast<std::uint8_t>(0x10 + i)));
  const std::vector<std::pair<std::uint64_t, std::uint64_t>> eras = {
      {64, 1000}, {4096, 1000}, {64, 42}, {32768, 20000}, {65536, 1000005}, {4, 5}, {256, 513}};
  for (auto [p, cur] : eras) input["eras"].push_back({{"period", p}, {"current", cur}});

  auto file = std::filesystem::temp_directory_path() / ("gear_rpc_oracle_" + std::to_string(::getpid()) + ".json");
  std::ofstream(file) << input.dump();
  std::string out = run("node '" + kJsDir + "/check_extrinsic.mjs' '" + kVaraMetadata + "' '" + file.string() + "'");
  json result = json::parse(out, nullptr, false);
  ASSERT_FALSE(result.is_discarded()) << "node tests/js/check_extrinsic.mjs failed (input kept in " << file << "): " << out;
  std::filesystem::remove(file);

  ASSERT_EQ(result["cases"].size(), cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("case " + std::to_string(i));
    EXPECT_EQ(result["cases"][i]["errors"], json::array()) << input["cases"][i].dump();
  }
  // The long cases really exercised the hashed signing payload.
  EXPECT_GT(result["cases"][2]["signingPayloadLength"].get<int>(), 256);
  EXPECT_GT(result["cases"][3]["signingPayloadLength"].get<int>(), 256);
  EXPECT_LE(result["cases"][0]["signingPayloadLength"].get<int>(), 256);

  ASSERT_EQ(result["eras"].size(), eras.size());
  for (std::size_t i = 0; i < eras.size(); ++i)
    EXPECT_EQ(result["eras"][i], to_hex(Era::mortal(eras[i].first, eras[i].second).encode()))
        << eras[i].first << "@" << eras[i].second;
}

}  // namespace
}  // namespace p2p::gear_rpc
