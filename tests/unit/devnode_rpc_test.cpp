// Tests for lib/devnode/rpc (the JSON-RPC dispatcher, driven without sockets) and parse_listen: error
// objects, params, batches, the method answers, and the subscription life cycle a client sees.
#include "devnode/rpc.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <set>

#include "vara_metadata/embedded.hpp"
#include "devnode/rpc_server.hpp"
#include "gear_rpc/extrinsic.hpp"
#include "w3b/messages.hpp"

namespace p2p::devnode {
namespace {

using nlohmann::json;

const metadata::Metadata& vara() {
  static const metadata::Metadata m = metadata::Metadata::parse(vara_metadata::embedded());
  return m;
}

struct FakeSession : Session {
  std::vector<json> got;
  void send(const std::string& text) override { got.push_back(json::parse(text)); }
};

struct Fixture {
  std::filesystem::path dir;
  std::optional<ledger::Ledger> ledger;
  std::optional<Chain> chain;
  std::optional<Rpc> rpc;
  Fixture() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "p2p-devnode-rpc-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    dir = tmpl;
    ledger.emplace(dir / "l.db", ledger::Options{.busy_timeout_ms = 5000, .fixed_time_ms = 1'000'000});
    Options o;
    o.clock = [] { return std::uint64_t{1'000'000}; };
    chain.emplace(vara(), *ledger, o);
    rpc.emplace(*chain, vara_metadata::embedded());
  }
  ~Fixture() {
    rpc.reset();
    chain.reset();
    ledger.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  // One call over "HTTP" (no session); returns the whole response object.
  json call(const std::string& method, json params = json::array(), Session* s = nullptr) {
    json req = {{"jsonrpc", "2.0"}, {"id", 7}, {"method", method}, {"params", std::move(params)}};
    auto a = rpc->handle(req.dump(), s);
    if (auto* fs = dynamic_cast<FakeSession*>(s))
      for (const auto& n : a.after) fs->got.push_back(json::parse(n));
    return json::parse(a.response);
  }
  json raw(const std::string& body) {
    auto a = rpc->handle(body, nullptr);
    return a.response.empty() ? json() : json::parse(a.response);
  }

  Bytes extrinsic(const keys::Keypair& k, std::uint64_t nonce, const std::string& name = "n") {
    gear_rpc::SigningContext ctx;
    ctx.spec_version = chain->runtime_version().spec_version;
    ctx.tx_version = chain->runtime_version().transaction_version;
    ctx.genesis = ctx.era_block_hash = chain->genesis_hash();
    ctx.nonce = nonce;
    gear_rpc::SendMessageCall c;
    c.destination = chain->program_id();
    w3b::EditProfile p;
    p.name = name;
    c.payload = w3b::encode_command(p);
    c.gas_limit = 10'000'000'000;
    return gear_rpc::build_signed(vara(), k, gear_rpc::encode_send_message(vara(), c), ctx);
  }
  void block() { rpc->on_block(chain->produce_block()); }
};

keys::Keypair key(std::uint8_t n) {
  keys::Seed s{};
  s.fill(n);
  return keys::Keypair::from_seed(s);
}

int error_code(const json& r) { return r.contains("error") ? r["error"]["code"].get<int>() : 0; }

TEST(DevnodeRpc, ProtocolErrors) {
  Fixture f;
  json r = f.raw("{not json");
  EXPECT_EQ(error_code(r), -32700);
  EXPECT_EQ(r["id"], nullptr);
  EXPECT_EQ(r["jsonrpc"], "2.0");
  EXPECT_EQ(error_code(f.raw(std::string(100000, '['))), -32700);  // refused before parsing

  r = f.raw(R"({"jsonrpc":"2.0","id":"abc","method":"no_such_method","params":[]})");
  EXPECT_EQ(error_code(r), -32601);
  EXPECT_EQ(r["error"]["message"], "Method not found");
  EXPECT_EQ(r["id"], "abc");

  EXPECT_EQ(error_code(f.raw(R"({"id":1,"method":"rpc_methods"})")), -32600);           // no "jsonrpc"
  EXPECT_EQ(error_code(f.raw(R"({"jsonrpc":"2.0","id":1,"method":5})")), -32600);      // method not a string
  EXPECT_EQ(error_code(f.raw(R"({"jsonrpc":"2.0","id":[1],"method":"rpc_methods"})")), -32600);
  EXPECT_EQ(error_code(f.raw("[]")), -32600);
  EXPECT_EQ(error_code(f.raw("42")), -32600);
  EXPECT_EQ(error_code(f.raw(R"({"jsonrpc":"2.0","id":1,"method":"rpc_methods","params":{"a":1}})")), -32602);
}

TEST(DevnodeRpc, InvalidParams) {
  Fixture f;
  EXPECT_EQ(error_code(f.call("chain_getBlockHash", {"zz"})), -32602);
  EXPECT_EQ(error_code(f.call("chain_getBlockHash", {-1})), -32602);
  EXPECT_EQ(error_code(f.call("chain_getHeader", {"0x1234"})), -32602);
  EXPECT_EQ(error_code(f.call("system_accountNextIndex", {"not an address"})), -32602);
  EXPECT_EQ(error_code(f.call("author_submitExtrinsic", {"0xzz"})), -32602);
  EXPECT_EQ(error_code(f.call("author_submitExtrinsic", json::array())), -32602);
  EXPECT_EQ(error_code(f.call("chain_getFinalizedHead", {1})), -32602);  // too many
  EXPECT_EQ(error_code(f.call("gear_calculateReplyForHandle", {"0x00", "0x00", "0x", 1, 0})), -32602);
}

TEST(DevnodeRpc, BatchesAndNotifications) {
  Fixture f;
  json r = f.raw(R"([{"jsonrpc":"2.0","id":1,"method":"system_chain"},
                     {"jsonrpc":"2.0","method":"system_chain"},
                     {"jsonrpc":"2.0","id":2,"method":"nope"}])");
  ASSERT_TRUE(r.is_array());
  ASSERT_EQ(r.size(), 2u);  // the notification gets no answer
  EXPECT_EQ(r[0]["result"], "p2pstream devnode");
  EXPECT_EQ(r[1]["id"], 2);
  EXPECT_EQ(error_code(r[1]), -32601);
  EXPECT_TRUE(f.raw(R"({"jsonrpc":"2.0","method":"system_chain"})").is_null());
}

TEST(DevnodeRpc, ChainAndStateAnswers) {
  Fixture f;
  std::string genesis = to_hex(f.chain->genesis_hash());
  EXPECT_EQ(f.call("chain_getBlockHash", {0})["result"], genesis);
  EXPECT_EQ(f.call("chain_getBlockHash", {"0x0"})["result"], genesis);
  EXPECT_EQ(f.call("chain_getBlockHash", {5})["result"], nullptr);
  f.block();
  f.block();
  EXPECT_EQ(f.call("chain_getBlockHash")["result"], to_hex(f.chain->best().hash));
  EXPECT_EQ(f.call("chain_getBlockHash", {json::array({0, 2, 9})})["result"],
            (json::array({genesis, to_hex(f.chain->best().hash), nullptr})));
  json h = f.call("chain_getHeader")["result"];
  EXPECT_EQ(h["number"], "0x2");
  EXPECT_EQ(h["parentHash"], to_hex(f.chain->block(1)->hash));
  EXPECT_EQ(f.call("chain_getHeader", {genesis})["result"]["number"], "0x0");
  EXPECT_EQ(f.call("chain_getHeader", {"0x" + std::string(64, 'a')})["result"], nullptr);
  EXPECT_EQ(f.call("chain_getFinalizedHead")["result"], to_hex(f.chain->block(1)->hash));
  json b = f.call("chain_getBlock", {to_hex(f.chain->block(1)->hash)})["result"];
  EXPECT_EQ(b["block"]["header"]["number"], "0x1");
  EXPECT_EQ(b["block"]["extrinsics"], json::array({to_hex(f.chain->block(1)->extrinsics[0])}));
  EXPECT_EQ(b["justifications"], nullptr);

  json v = f.call("state_getRuntimeVersion")["result"];
  EXPECT_EQ(v["specVersion"], f.chain->runtime_version().spec_version);
  EXPECT_EQ(v["transactionVersion"], 1);
  EXPECT_EQ(f.call("state_getMetadata")["result"], to_hex(vara_metadata::embedded()));
  EXPECT_EQ(error_code(f.call("state_getMetadata", {"0x" + std::string(64, 'b')})), 4003);

  std::string events_key = "0x26aa394eea5630e07c48ae0c9558cef780d41e5e16056765bc8461851072c9d7";
  EXPECT_EQ(f.call("state_getStorage", {events_key, to_hex(f.chain->block(1)->hash)})["result"],
            to_hex(f.chain->block(1)->events));
  EXPECT_EQ(f.call("state_getStorage", {"0x1234"})["result"], nullptr);
  EXPECT_EQ(f.call("system_properties")["result"],
            (json{{"ss58Format", 137}, {"tokenDecimals", 12}, {"tokenSymbol", "VARA"}}));
  auto methods = f.call("rpc_methods")["result"]["methods"];
  for (const char* m : {"author_submitAndWatchExtrinsic", "chain_subscribeNewHeads", "gear_calculateHandleGas",
                        "gear_calculateReplyForHandle", "state_getStorage", "system_accountNextIndex"})
    EXPECT_NE(std::find(methods.begin(), methods.end(), m), methods.end()) << m;
}

TEST(DevnodeRpc, SubmitOverHttpAndNonceBySs58OrHex) {
  Fixture f;
  auto k = key(1);
  Bytes x = f.extrinsic(k, 0);
  EXPECT_EQ(f.call("author_submitExtrinsic", {to_hex(x)})["result"], to_hex(blake2b_256(x)));
  EXPECT_EQ(f.call("author_pendingExtrinsics")["result"], json::array({to_hex(x)}));
  EXPECT_EQ(f.call("system_accountNextIndex", {keys::ss58_encode(k.public_key())})["result"], 1);
  EXPECT_EQ(f.call("system_accountNextIndex", {keys::ss58_encode(k.public_key(), 42)})["result"], 1);
  EXPECT_EQ(f.call("system_accountNextIndex", {to_hex(k.public_key())})["result"], 1);

  json dup = f.call("author_submitExtrinsic", {to_hex(x)});
  EXPECT_EQ(error_code(dup), 1013);
  EXPECT_EQ(dup["error"]["message"], "Transaction Already Imported");
  Bytes bad = f.extrinsic(k, 1);
  bad[41] ^= 1;
  json r = f.call("author_submitExtrinsic", {to_hex(bad)});
  EXPECT_EQ(r["error"], (json{{"code", 1010}, {"message", "Invalid Transaction"},
                              {"data", "Transaction has a bad signature"}}));
  // Subscriptions need a WebSocket.
  EXPECT_EQ(error_code(f.call("author_submitAndWatchExtrinsic", {to_hex(f.extrinsic(k, 1))})), -32601);
  EXPECT_EQ(f.call("author_pendingExtrinsics")["result"].size(), 1u);
  EXPECT_EQ(error_code(f.call("chain_subscribeNewHeads")), -32601);
}

TEST(DevnodeRpc, WatchedExtrinsicGoesReadyInBlockFinalized) {
  Fixture f;
  FakeSession s;
  Bytes x = f.extrinsic(key(2), 0);
  json r = f.call("author_submitAndWatchExtrinsic", {to_hex(x)}, &s);
  ASSERT_TRUE(r["result"].is_string()) << r.dump();
  std::string id = r["result"];
  ASSERT_EQ(s.got.size(), 1u);
  EXPECT_EQ(s.got[0], (json{{"jsonrpc", "2.0"},
                            {"method", "author_extrinsicUpdate"},
                            {"params", {{"subscription", id}, {"result", "ready"}}}}));
  f.block();
  ASSERT_EQ(s.got.size(), 2u);
  EXPECT_EQ(s.got[1]["params"]["result"], (json{{"inBlock", to_hex(f.chain->best().hash)}}));
  std::string in_block = to_hex(f.chain->best().hash);
  f.block();
  ASSERT_EQ(s.got.size(), 3u);
  EXPECT_EQ(s.got[2]["params"]["result"], (json{{"finalized", in_block}}));
  EXPECT_EQ(f.rpc->subscription_count(), 0u);  // a final status ends it
  f.block();
  EXPECT_EQ(s.got.size(), 3u);
}

TEST(DevnodeRpc, FutureThenReadyAndUnwatch) {
  Fixture f;
  FakeSession s;
  auto k = key(3);
  json r = f.call("author_submitAndWatchExtrinsic", {to_hex(f.extrinsic(k, 1))}, &s);
  EXPECT_EQ(s.got.back()["params"]["result"], "future");
  f.call("author_submitExtrinsic", {to_hex(f.extrinsic(k, 0))});
  f.block();  // both go in: nonce 0 then 1
  EXPECT_EQ(s.got.back()["params"]["result"]["inBlock"], to_hex(f.chain->best().hash));
  EXPECT_EQ(f.call("author_unwatchExtrinsic", {r["result"]}, &s)["result"], true);
  EXPECT_EQ(f.call("author_unwatchExtrinsic", {r["result"]}, &s)["result"], false);
}

TEST(DevnodeRpc, HeadSubscriptionsAndClose) {
  Fixture f;
  FakeSession s;
  std::string heads = f.call("chain_subscribeNewHeads", json::array(), &s)["result"];
  std::string fin = f.call("chain_subscribeFinalizedHeads", json::array(), &s)["result"];
  ASSERT_EQ(s.got.size(), 2u);  // the current heads at once
  EXPECT_EQ(s.got[0]["method"], "chain_newHead");
  EXPECT_EQ(s.got[0]["params"]["result"]["number"], "0x0");
  EXPECT_EQ(s.got[1]["method"], "chain_finalizedHead");
  f.block();
  f.block();
  std::vector<std::string> seen;
  for (const auto& n : s.got) seen.push_back(n["method"].get<std::string>() + n["params"]["result"]["number"].get<std::string>());
  EXPECT_EQ(seen, (std::vector<std::string>{"chain_newHead0x0", "chain_finalizedHead0x0", "chain_newHead0x1",
                                            "chain_newHead0x2", "chain_finalizedHead0x1"}));
  EXPECT_EQ(f.call("chain_unsubscribeNewHeads", {heads}, &s)["result"], true);
  EXPECT_EQ(f.call("chain_unsubscribeNewHeads", {fin}, &s)["result"], false);  // wrong kind
  f.rpc->close(&s);
  EXPECT_EQ(f.rpc->subscription_count(), 0u);
}

TEST(DevnodeRpc, GearGasAndReplyFormats) {
  Fixture f;
  std::string program = to_hex(f.chain->program_id());
  std::string who = to_hex(key(4).public_key());
  json g = f.call("gear_calculateHandleGas",
                  {who, program, to_hex(w3b::encode_command(w3b::EditProfile{})), 0, false})["result"];
  EXPECT_TRUE(g["min_limit"].is_number_unsigned());
  for (const char* k : {"reserved", "burned", "may_be_returned", "waited"}) EXPECT_TRUE(g.contains(k)) << k;
  std::string new_stream = "0x3057334273747265616d696e67244e657753747265616d047400010000000000000002000000000000000469";
  json e = f.call("gear_calculateHandleGas", {who, program, new_stream, "0", false});
  EXPECT_EQ(e["error"], (json{{"code", 8000},
                              {"message", "Runtime error"},
                              {"data", "\"Program terminated with a trap: 'Panic occurred: panicked with 'Account is no "
                                       "registered''\""}}));
  json q = f.call("gear_calculateReplyForHandle",
                  {"0x" + std::string(64, '0'), program, "0x3057334273747265616d696e67204765745374617465",
                   750000000000ull, 0})["result"];
  EXPECT_EQ(q["code"], (json{{"Success", "Manual"}}));
  EXPECT_EQ(q["value"], 0);
  EXPECT_NO_THROW(w3b::decode_state_reply(*from_hex(q["payload"].get<std::string>())));
  json p = f.call("gear_calculateReplyForHandle", {who, program, new_stream, "750000000000", 0})["result"];
  EXPECT_EQ(p["code"], (json{{"Error", {{"Execution", "UserspacePanic"}}}}));
  EXPECT_EQ(p["payload"], to_hex(view("panicked with 'Account is no registered'")));
}

TEST(DevnodeRpc, EveryMethodSurvivesHostileParams) {
  Fixture f;
  FakeSession s;
  const std::string h64 = "0x" + std::string(64, 'f');
  const std::vector<json> params = {
      json(), json::array(), json::object(), json::array({nullptr}), json::array({1e308}), json::array({-1}),
      json::array({"0x"}), json::array({json::object()}), json::array({json::array({json::array()})}),
      json::array({h64, h64, "0x00", "340282366920938463463374607431768211456", true, h64}),
      json::array({h64, h64, "0x", "0xffffffffffffffffffffffffffffffffffff", "yes"}),
      json::array({"5" + std::string(47, 'z')}), json::array({std::string(5000, '9')}),
      json::array({true, true, true, true, true, true, true})};
  const std::set<int> known = {-32700, -32600, -32601, -32602, -32603, 1001, 1010, 1013, 1014, 1016, 4003, 8000};
  for (const auto& method : f.rpc->methods())
    for (const auto& p : params)
      for (Session* session : {static_cast<Session*>(nullptr), static_cast<Session*>(&s)}) {
        json req = {{"jsonrpc", "2.0"}, {"id", 1}, {"method", method}};
        if (!p.is_null()) req["params"] = p;
        json r = json::parse(f.rpc->handle(req.dump(), session).response);
        ASSERT_TRUE(r.contains("result") != r.contains("error")) << method << " " << p.dump() << " -> " << r.dump();
        if (r.contains("error")) {
          EXPECT_TRUE(known.count(r["error"]["code"].get<int>())) << method << " " << p.dump() << " -> " << r.dump();
          EXPECT_NE(r["error"]["code"], -32603) << method << " " << p.dump() << " -> " << r.dump();
        }
      }
}

TEST(DevnodeServer, ListenAddressesAreLoopbackOnly) {
  EXPECT_EQ(parse_listen("127.0.0.1:9944"), (std::pair<std::string, std::uint16_t>{"127.0.0.1", 9944}));
  EXPECT_EQ(parse_listen("localhost:0"), (std::pair<std::string, std::uint16_t>{"127.0.0.1", 0}));
  EXPECT_EQ(parse_listen(":1234"), (std::pair<std::string, std::uint16_t>{"127.0.0.1", 1234}));
  EXPECT_EQ(parse_listen("[::1]:80"), (std::pair<std::string, std::uint16_t>{"::1", 80}));
  EXPECT_EQ(parse_listen("127.0.0.2:1").first, "127.0.0.2");
  for (const char* bad : {"0.0.0.0:9944", "192.168.1.1:9944", "example.com:1", "127.0.0.1", "127.0.0.1:65536",
                          "127.0.0.1:-1", "127.0.0.1:x", "[::1]", "[::]:1"})
    EXPECT_THROW(parse_listen(bad), UsageError) << bad;
}

}  // namespace
}  // namespace p2p::devnode
