// End to end: the chain subcommands against a node, through the built binary. `p2pstream devnode` is the node
// (HTTP and WebSocket); its answers must match the embedded ledger's. Fault cases use small fake nodes written
// here: a raw socket that answers garbage, a node whose metadata is truncated, and one that accepts an
// extrinsic but never includes it.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "fixtures.hpp"
#include "w3b/messages.hpp"

using nlohmann::json;
using p2p::test::Home;
using p2p::test::trim;
using namespace std::chrono_literals;

namespace {

const std::string kMetadataFile = std::string(P2P_SOURCE_DIR) + "/data/vara_runtime.scale";

std::string hex_of(const std::string& bytes) {
  static const char* d = "0123456789abcdef";
  std::string out = "0x";
  for (unsigned char c : bytes) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// A p2pstream process that keeps running (the devnode, events --follow), with its stdout readable line by line.

// The devnode for one test, in that test's home; fails the test if it does not start.
struct Devnode : p2p::test::DevnodeServer {
  explicit Devnode(const Home& h, const std::string& block_time = "100ms", std::vector<std::string> extra = {})
      : DevnodeServer(h, [&] {
          extra.insert(extra.begin(), {"--block-time", block_time});
          return extra;
        }()) {
    if (http.empty()) ADD_FAILURE() << "the devnode did not start\n" << p.both();
  }
  void kill() { p.signal(SIGKILL); }
};

// ---------------------------------------------------------------------------------------------
// A fake node: a raw HTTP/1.1 server on a thread. The handler gets each request body and returns the
// response body; every connection is closed after one answer.

class FakeNode {
 public:
  using Handler = std::function<std::string(const std::string& body)>;
  explicit FakeNode(Handler h) : handler_(std::move(h)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) || ::listen(fd_, 16)) throw std::runtime_error("bind");
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    url = "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port));
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeNode() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  FakeNode(const FakeNode&) = delete;
  FakeNode& operator=(const FakeNode&) = delete;
  std::string url;
  std::atomic<int> requests{0};

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      answer(c);
      ::close(c);
    }
  }
  void answer(int c) {
    std::string req;
    char buf[65536];
    std::size_t need = std::string::npos;
    while (need == std::string::npos || req.size() < need) {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 2000) <= 0) return;
      ssize_t n = ::read(c, buf, sizeof buf);
      if (n <= 0) return;
      req.append(buf, static_cast<std::size_t>(n));
      auto end = req.find("\r\n\r\n");
      if (end != std::string::npos && need == std::string::npos) {
        std::smatch m;
        std::string head = req.substr(0, end);
        std::regex cl("Content-Length: *([0-9]+)", std::regex::icase);
        need = end + 4 + (std::regex_search(head, m, cl) ? std::stoul(m[1]) : 0);
      }
    }
    ++requests;
    std::string body = handler_(req.substr(req.find("\r\n\r\n") + 4));
    std::string resp = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                       std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    for (std::size_t off = 0; off < resp.size();) {
      ssize_t n = ::write(c, resp.data() + off, resp.size() - off);
      if (n <= 0) return;
      off += static_cast<std::size_t>(n);
    }
  }
  Handler handler_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A JSON-RPC answer with the request's id.
std::string result(const std::string& request, const json& r) {
  json q = json::parse(request);
  return json{{"jsonrpc", "2.0"}, {"id", q["id"]}, {"result", r}}.dump();
}

// One JSON-RPC call from the test itself (to read chain facts or submit an offline-signed extrinsic).
json rpc(const std::string& url, const std::string& method, const json& params) {
  auto colon = url.rfind(':');
  int port = std::stoi(url.substr(colon + 1));
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a)) throw std::runtime_error("connect");
  std::string body = json{{"jsonrpc", "2.0"}, {"id", 1}, {"method", method}, {"params", params}}.dump();
  std::string req = "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  (void)!::write(fd, req.data(), req.size());
  std::string resp;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) resp.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  json j = json::parse(resp.substr(resp.find("\r\n\r\n") + 4));
  if (j.contains("error")) throw std::runtime_error(j["error"].dump());
  return j["result"];
}

// ---------------------------------------------------------------------------------------------
// The same story on the ledger and on a node; outputs are compared after the parts that must differ
// (stream ids' timestamps, block numbers, hashes, fees) are blanked.

json normalise(json j) {
  static const std::regex stream_id("^[0-9]{13}");
  if (j.is_object()) {
    for (const char* k : {"block", "block_time", "message_id", "start", "end", "start_time", "end_time", "since"})
      if (j.contains(k)) j[k] = "*";
    // Only a node knows these; an event's payload holds the stream id's timestamp.
    for (const char* k : {"block_hash", "gas_limit", "fee", "payload"}) j.erase(k);
    for (auto& [k, v] : j.items()) v = normalise(v);
  } else if (j.is_array()) {
    for (auto& v : j) v = normalise(v);
  } else if (j.is_string()) {
    j = std::regex_replace(j.get<std::string>(), stream_id, "<ms>");
  }
  return j;
}

struct Step {
  int code;
  json out;         // normalised stdout (JSON), or the text
  std::string err;  // the error line, for failing steps
  json raw;         // stdout as it came
};

std::string error_line(const std::string& err) {
  auto at = err.rfind("error: ");
  return at == std::string::npos ? "" : trim(err.substr(at));
}

Step step(const Home& h, std::vector<std::string> args, const std::vector<std::string>& where) {
  args.insert(args.end(), where.begin(), where.end());
  p2p::test::Run r = h.run(args);
  json out = json::parse(r.out, nullptr, false);
  if (out.is_discarded()) out = trim(r.out);
  return {r.code, normalise(out), r.code == 0 ? "" : error_line(r.err), out};
}

// Every chain subcommand, refusals included; `where` selects the ledger (empty) or a node.
std::vector<Step> story(const Home& h, const std::string& bob, const std::vector<std::string>& where) {
  std::vector<Step> s;
  auto add = [&](std::vector<std::string> args) { s.push_back(step(h, std::move(args), where)); };
  add({"profile", "set", "--name", "Alice", "--json"});
  add({"profile", "set", "--name", "Bob", "--img", "https://b.example/b.png", "--account", "bob", "--json"});
  add({"schedule", "--title", "Jam", "--start", "+30m", "--duration", "1h", "--description", "drums", "--json"});
  std::vector<std::string> list = {"streams", "--json"};
  list.insert(list.end(), where.begin(), where.end());
  json streams = json::parse(h.run(list).out, nullptr, false);
  std::string id = streams.is_array() && !streams.empty() ? streams[0]["id"].get<std::string>() : "missing";
  add({"streams", "--json"});
  add({"edit", id, "--title", "Jam (moved)", "--json"});
  add({"streams", "show", id, "--json"});  // the description survived the edit
  add({"edit", id, "--title", "stolen", "--account", "bob"});
  add({"subscribe", bob, "--json"});
  add({"subscribe", bob});  // refused before sending
  add({"profile", "--json"});
  add({"profile", bob, "--json"});
  add({"profile", "set", "--surname", "Lovelace", "--json"});  // merges the name read from the chain
  add({"unsubscribe", bob, "--json"});
  add({"unsubscribe", bob});
  add({"schedule", "--title", "x", "--start", "now", "--duration", "1h", "--account", "carol"});
  add({"delete", id, "--account", "bob"});
  add({"delete", id, "--json"});
  add({"streams", "--json"});
  add({"events", "--json", "--from", "1"});
  return s;
}

// The home with alice (the default account), bob, and carol who has no profile.
struct World {
  Home h;
  std::string bob;
  World() {
    h.ok({"key", "import", "alice", "--seed", "0x" + std::string(64, 'a')});
    h.ok({"key", "import", "bob", "--seed", "0x" + std::string(64, 'b')});
    h.ok({"key", "import", "carol", "--seed", "0x" + std::string(64, 'c')});
    h.ok({"config", "set", "account", "alice"});
    bob = json::parse(h.ok({"key", "show", "bob", "--json"}))["address"];
  }
};

void expect_same(const std::vector<Step>& ledger, const std::vector<Step>& node) {
  ASSERT_EQ(ledger.size(), node.size());
  for (std::size_t i = 0; i < ledger.size(); ++i) {
    SCOPED_TRACE("step " + std::to_string(i));
    EXPECT_EQ(ledger[i].code, node[i].code) << node[i].err;
    EXPECT_EQ(ledger[i].out, node[i].out);
    EXPECT_EQ(ledger[i].err, node[i].err);
  }
}

void expect_story_matches_ledger(bool websocket) {
  World ledger_world, node_world;
  auto on_ledger = story(ledger_world.h, ledger_world.bob, {});
  Devnode node(node_world.h);
  auto on_node = story(node_world.h, node_world.bob,
                       {"--endpoint", websocket ? node.ws : node.http, "--program", node.program});
  expect_same(on_ledger, on_node);
  // Spot checks, so a story that fails the same way on both cannot pass.
  EXPECT_EQ(on_node[0].code, 0);
  EXPECT_EQ(on_node[5].out["description"], "drums");
  EXPECT_EQ(on_node[6].code, 3);
  EXPECT_EQ(on_node[6].err, "error: refused by the program: You are not broadcaster");
  EXPECT_EQ(on_node[8].code, 3);
  EXPECT_EQ(on_node[11].out["profile"]["name"], "Alice");
  EXPECT_EQ(on_node[14].err, "error: refused by the program: Account is no registered");
  EXPECT_EQ(on_node.back().out.size(), 8u) << on_node.back().out.dump();
  // What only a node reports: the block hash, the gas limit paid for, and the fee.
  for (std::size_t i : {0u, 2u, 4u, 7u, 16u}) {
    EXPECT_TRUE(on_node[i].raw.contains("block_hash")) << i;
    EXPECT_TRUE(on_node[i].raw.contains("gas_limit")) << i;
    EXPECT_TRUE(on_node[i].raw.contains("fee")) << i;
  }
}

}  // namespace

TEST(CliGearRpc, EveryChainCommandMatchesTheLedgerOverHttp) { expect_story_matches_ledger(false); }

TEST(CliGearRpc, EveryChainCommandMatchesTheLedgerOverWebSocket) { expect_story_matches_ledger(true); }

// ---------------------------------------------------------------------------------------------
// Faults

namespace {

const std::string kSomeProgram = "0x" + std::string(64, '5');

// A fake node that answers every method the client uses before submitting; `overrides` replace answers.
FakeNode::Handler node_answers(std::map<std::string, std::function<json(const json&)>> overrides = {}) {
  auto metadata_hex = std::make_shared<std::string>(hex_of(p2p::test::slurp(kMetadataFile)));
  p2p::Bytes reply = p2p::w3b::encode_state_reply({});
  std::string empty_state = hex_of(std::string(reply.begin(), reply.end()));
  return [metadata_hex, overrides, empty_state](const std::string& body) {
    json q = json::parse(body);
    std::string m = q["method"];
    if (auto it = overrides.find(m); it != overrides.end()) return result(body, it->second(q["params"]));
    if (m == "chain_getBlockHash")
      return result(body, q["params"].empty() || q["params"][0] != 0 ? "0x" + std::string(64, 'b') : "0x" + std::string(64, 'a'));
    if (m == "state_getRuntimeVersion") return result(body, {{"specVersion", 1900}, {"transactionVersion", 1}});
    if (m == "state_getMetadata") return result(body, *metadata_hex);
    if (m == "system_accountNextIndex") return result(body, 0);
    if (m == "gear_calculateHandleGas") return result(body, {{"min_limit", 1000000}});
    if (m == "gear_calculateReplyForHandle")
      return result(body, {{"payload", empty_state},
                           {"value", 0},
                           {"code", {{"Success", "Manual"}}}});
    if (m == "chain_getHeader") return result(body, {{"number", "0x5"}, {"parentHash", "0x" + std::string(64, 'c')}});
    if (m == "chain_getBlock") return result(body, {{"block", {{"extrinsics", json::array()}}}});
    if (m == "author_submitExtrinsic") return result(body, "0x" + std::string(64, 'd'));
    return json{{"jsonrpc", "2.0"}, {"id", q["id"]}, {"error", {{"code", -32601}, {"message", "Method not found"}}}}.dump();
  };
}

}  // namespace

TEST(CliGearRpc, MalformedAnswerIsARuntimeErrorNamingTheNodeAndMethod) {
  World w;
  FakeNode garbage([](const std::string&) { return std::string("<html>this is not JSON-RPC</html>"); });
  p2p::test::Run r = w.h.run({"streams", "--endpoint", garbage.url, "--program", kSomeProgram});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(error_line(r.err), "error: malformed answer from " + garbage.url + " to gear_calculateReplyForHandle: not JSON");
  // Valid JSON that is not an answer to our request.
  FakeNode wrong_id([](const std::string&) { return std::string(R"({"jsonrpc":"2.0","id":999,"result":"0x"})"); });
  r = w.h.run({"streams", "--endpoint", wrong_id.url, "--program", kSomeProgram});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("malformed answer from " + wrong_id.url), std::string::npos) << r.err;
  // A well-formed answer whose payload is not the program's state.
  FakeNode not_state(node_answers({{"gear_calculateReplyForHandle", [](const json&) {
                                      return json{{"payload", "0x00"}, {"value", 0}, {"code", {{"Success", "Manual"}}}};
                                    }}}));
  r = w.h.run({"streams", "--endpoint", not_state.url, "--program", kSomeProgram});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("does not decode"), std::string::npos) << r.err;
}

TEST(CliGearRpc, NothingListeningIsExitFourNamingTheUrl) {
  World w;
  p2p::test::Run r = w.h.run({"streams", "--endpoint", "http://127.0.0.1:1", "--program", kSomeProgram});
  EXPECT_EQ(r.code, 4);
  EXPECT_NE(r.err.find("cannot reach http://127.0.0.1:1"), std::string::npos) << r.err;
  r = w.h.run({"profile", "set", "--name", "A", "--endpoint", "ws://127.0.0.1:1", "--program", kSomeProgram});
  EXPECT_EQ(r.code, 4);
  EXPECT_NE(r.err.find("cannot reach ws://127.0.0.1:1"), std::string::npos) << r.err;
}

TEST(CliGearRpc, TruncatedMetadataIsAClearError) {
  World w;
  auto blob = p2p::test::slurp(kMetadataFile);
  std::string truncated = hex_of(blob.substr(0, blob.size() / 2));
  FakeNode node(node_answers({{"state_getMetadata", [truncated](const json&) { return json(truncated); }}}));
  p2p::test::Run r = w.h.run({"profile", "set", "--name", "A", "--endpoint", node.url, "--program", kSomeProgram});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("the runtime metadata from " + node.url + " does not parse"), std::string::npos) << r.err;
  // Not even hex.
  FakeNode text(node_answers({{"state_getMetadata", [](const json&) { return json("meta"); }}}));
  r = w.h.run({"profile", "set", "--name", "A", "--endpoint", text.url, "--program", kSomeProgram});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("malformed answer from " + text.url + " to state_getMetadata"), std::string::npos) << r.err;
}

TEST(CliGearRpc, AnExtrinsicNeverIncludedTimesOutClearly) {
  World w;
  FakeNode node(node_answers());
  auto t0 = std::chrono::steady_clock::now();
  p2p::test::Run r = w.h.run({"profile", "set", "--name", "A", "--endpoint", node.url, "--program", kSomeProgram, "--timeout", "2"});
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_TRUE(std::regex_search(error_line(r.err), std::regex("^error: no block included the extrinsic 0x[0-9a-f]{64} within 2 s")))
      << r.err;
  EXPECT_LT(took, 10s);
  EXPECT_GE(took, 2s);
}

TEST(CliGearRpc, ProgramRefusalInTheGasEstimateSendsNothing) {
  World w;
  std::atomic<int> submitted{0};
  // Gear's answer when the program would panic: error 8000 with the panic nested in the trap's text.
  FakeNode refusing([&submitted, inner = node_answers()](const std::string& body) {
    json q = json::parse(body);
    if (q["method"] == "author_submitExtrinsic") ++submitted;
    if (q["method"] == "gear_calculateHandleGas")
      return json{{"jsonrpc", "2.0"},
                  {"id", q["id"]},
                  {"error",
                   {{"code", 8000},
                    {"message", "Runtime error"},
                    {"data", "\"Program terminated with a trap: 'Panic occurred: panicked with 'Account is no registered''\""}}}}
          .dump();
    return inner(body);
  });
  p2p::test::Run r = w.h.run({"schedule", "--title", "t", "--start", "+1h", "--duration", "1h", "--endpoint", refusing.url,
                   "--program", kSomeProgram});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_EQ(error_line(r.err), "error: refused by the program: Account is no registered");
  EXPECT_EQ(submitted.load(), 0);
}

TEST(CliGearRpc, NodeKilledMidSubmitIsExitFour) {
  for (bool websocket : {false, true}) {
    SCOPED_TRACE(websocket ? "ws" : "http");
    World w;
    // Blocks every minute: the extrinsic waits in the pool while the client polls.
    Devnode node(w.h, "60s");
    std::thread killer([&node] {
      std::this_thread::sleep_for(1500ms);
      node.kill();
    });
    p2p::test::Run r = w.h.run({"profile", "set", "--name", "A", "--endpoint", websocket ? node.ws : node.http, "--program",
                     node.program, "--timeout", "30"});
    killer.join();
    EXPECT_EQ(r.code, 4) << r.err;
    std::string url = websocket ? node.ws : node.http;
    EXPECT_NE(error_line(r.err).find(url), std::string::npos) << r.err;
    EXPECT_NE(error_line(r.err).find("was submitted before that and may still be included"), std::string::npos) << r.err;
  }
}

TEST(CliGearRpc, ImmortalFinalizedAndFixedGasAreAcceptedByTheNode) {
  World w;
  Devnode node(w.h, "100ms", {"--finality-lag", "3"});
  std::vector<std::string> at = {"--endpoint", node.http, "--program", node.program};
  auto with = [&](std::vector<std::string> a) {
    a.insert(a.end(), at.begin(), at.end());
    return a;
  };
  // The devnode checks the signature against the genesis hash for an immortal era.
  json r = json::parse(w.h.ok(with({"profile", "set", "--name", "Alice", "--era", "immortal", "--json"})));
  EXPECT_EQ(r["profile"]["name"], "Alice");
  // --finalized waits until the block is final: by then the best block is at least 3 ahead.
  r = json::parse(w.h.ok(with({"profile", "set", "--name", "Ada", "--finalized", "--json"})));
  std::uint64_t best = std::stoull(rpc(node.http, "chain_getHeader", json::array())["number"].get<std::string>(), nullptr, 16);
  EXPECT_GE(best, r["block"].get<std::uint64_t>() + 3);
  // A fixed gas limit skips the estimate and is what the receipt reports.
  r = json::parse(w.h.ok(with({"profile", "set", "--name", "Ada L", "--gas", "2000000000", "--json"})));
  EXPECT_EQ(r["gas_limit"], 2000000000u);
  // Without the estimate a refusal comes back as the program's reply: still exit 3 with its reason.
  auto refused = w.h.run(with({"schedule", "--title", "t", "--start", "+1h", "--duration", "1h", "--account", "bob",
                               "--gas", "2000000000"}));
  EXPECT_EQ(refused.code, 3) << refused.err;
  EXPECT_EQ(error_line(refused.err), "error: refused by the program: Account is no registered");
}

// ---------------------------------------------------------------------------------------------
// Offline signing

TEST(CliGearRpc, OfflineNamesEveryMissingFlag) {
  World w;
  p2p::test::Run r = w.h.run({"schedule", "--title", "t", "--start", "+1h", "--duration", "1h", "--offline", "--program", kSomeProgram});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(error_line(r.err),
            "error: --offline needs --nonce, --spec-version, --tx-version, --genesis, --era and --gas (nothing can be "
            "read from a node)");
  r = w.h.run({"schedule", "--title", "t", "--start", "+1h", "--duration", "1h", "--offline", "--program", kSomeProgram,
               "--nonce", "0", "--spec-version", "1", "--tx-version", "1", "--genesis", kSomeProgram, "--era", "64@100",
               "--gas", "1000"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--block-hash"), std::string::npos) << r.err;
  r = w.h.run({"schedule", "--title", "t", "--start", "+1h", "--duration", "1h", "--offline", "--nonce", "0",
               "--spec-version", "1", "--tx-version", "1", "--genesis", kSomeProgram, "--era", "immortal", "--gas", "1"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--offline needs --program"), std::string::npos) << r.err;
  r = w.h.run({"schedule", "--title", "t", "--start", "+1h", "--duration", "1h", "--nonce", "3"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("apply only with --offline"), std::string::npos) << r.err;
  r = w.h.run({"delete", "x", "--offline", "--program", kSomeProgram, "--nonce", "0", "--spec-version", "1",
               "--tx-version", "1", "--genesis", kSomeProgram, "--era", "63@100", "--block-hash", kSomeProgram, "--gas", "1"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("power of two"), std::string::npos) << r.err;
}

TEST(CliGearRpc, OfflineUnsubscribeSignsWithoutTheSubscriptionGuard) {
  World w;
  // Offline there is no state, so the "not subscribed" guard cannot run; the message is signed as asked.
  p2p::test::Run r = w.h.run({"unsubscribe", w.bob, "--offline", "--program", kSomeProgram, "--nonce", "0",
                              "--spec-version", "1", "--tx-version", "1", "--genesis", kSomeProgram, "--era",
                              "immortal", "--gas", "1000000000", "--json"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\"extrinsic\""), std::string::npos) << r.out;
}

TEST(CliGearRpc, OfflineSignedExtrinsicIsAcceptedByTheNode) {
  World w;
  Devnode node(w.h);
  // Alice needs a profile first; she gets it the ordinary way.
  w.h.ok({"profile", "set", "--name", "Alice", "--endpoint", node.http, "--program", node.program});
  std::string genesis = rpc(node.http, "chain_getBlockHash", json::array({0}));
  json version = rpc(node.http, "state_getRuntimeVersion", json::array());
  json nonce = rpc(node.http, "system_accountNextIndex",
                   json::array({json::parse(w.h.ok({"key", "show", "alice", "--json"}))["address"]}));
  std::uint64_t best = std::stoull(rpc(node.http, "chain_getHeader", json::array())["number"].get<std::string>(), nullptr, 16);
  std::string best_hash = rpc(node.http, "chain_getBlockHash", json::array({best}));
  std::vector<std::string> flags = {"--offline", "--program", node.program, "--nonce", std::to_string(nonce.get<int>()),
                                    "--spec-version", std::to_string(version["specVersion"].get<int>()),
                                    "--tx-version", std::to_string(version["transactionVersion"].get<int>()),
                                    "--genesis", genesis, "--gas", "5000000000"};
  auto with = [&](std::vector<std::string> a, std::vector<std::string> more) {
    a.insert(a.end(), flags.begin(), flags.end());
    a.insert(a.end(), more.begin(), more.end());
    return a;
  };
  // Mortal, from the current best block; --json gives the extrinsic and its hash.
  p2p::test::Run r = w.h.run(with({"schedule", "--title", "Offline jam", "--start", "+1h", "--duration", "1h", "--json"},
                       {"--era", "64@" + std::to_string(best), "--block-hash", best_hash}));
  ASSERT_EQ(r.code, 0) << r.err;
  json x = json::parse(r.out);
  ASSERT_TRUE(x["extrinsic"].is_string());
  EXPECT_TRUE(std::regex_match(x["hash"].get<std::string>(), std::regex("0x[0-9a-f]{64}")));
  EXPECT_EQ(rpc(node.http, "author_submitExtrinsic", json::array({x["extrinsic"]})), x["hash"]);
  // The node includes it; the stream appears.
  json streams;
  for (int i = 0; i < 100; ++i) {
    streams = json::parse(w.h.ok({"streams", "--json", "--endpoint", node.http, "--program", node.program}));
    if (!streams.empty()) break;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(streams.size(), 1u);
  EXPECT_EQ(streams[0]["title"], "Offline jam");
  // Immortal, plain hex on stdout, the next nonce.
  flags[4] = std::to_string(nonce.get<int>() + 1);
  r = w.h.run(with({"delete", streams[0]["id"]}, {"--era", "immortal"}));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(std::regex_match(trim(r.out), std::regex("0x[0-9a-f]+")));
  rpc(node.http, "author_submitExtrinsic", json::array({trim(r.out)}));
  for (int i = 0; i < 100 && !streams.empty(); ++i) {
    std::this_thread::sleep_for(100ms);
    streams = json::parse(w.h.ok({"streams", "--json", "--endpoint", node.http, "--program", node.program}));
  }
  EXPECT_TRUE(streams.empty());
}

TEST(CliGearRpc, OfflineWarnsAboutTheStateItCannotRead) {
  World w;
  std::vector<std::string> flags = {"--offline", "--program", kSomeProgram, "--nonce", "0", "--spec-version", "1",
                                    "--tx-version", "1", "--genesis", kSomeProgram, "--era", "immortal", "--gas", "1"};
  auto with = [&](std::vector<std::string> a) {
    a.insert(a.end(), flags.begin(), flags.end());
    return a;
  };
  p2p::test::Run r = w.h.run(with({"profile", "set", "--name", "Ada"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("--offline cannot read your profile, so the message sets every field: name 'Ada', surname cleared"),
            std::string::npos) << r.err;
  r = w.h.run(with({"edit", "123x", "--title", "New"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("this message clears it"), std::string::npos) << r.err;
  r = w.h.run(with({"edit", "123x", "--description", "kept"}));
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
  r = w.h.run(with({"subscribe", w.bob}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("cannot check your subscriptions"), std::string::npos) << r.err;
  // The same flags sign the same bytes (ed25519 is deterministic).
  EXPECT_EQ(w.h.ok(with({"subscribe", w.bob})), r.out);
  // The --metadata file is used when given, and a bad one is a usage error.
  EXPECT_EQ(w.h.ok(with({"subscribe", w.bob, "--metadata", kMetadataFile})), r.out);
  r = w.h.run(with({"subscribe", w.bob, "--metadata", "/dev/null"}));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--metadata /dev/null"), std::string::npos) << r.err;
}

// ---------------------------------------------------------------------------------------------
// events --follow

TEST(CliGearRpc, EventsFollowPrintsNewEventsAsTheyHappen) {
  World w;
  Devnode node(w.h);
  w.h.ok({"profile", "set", "--name", "Alice", "--endpoint", node.http, "--program", node.program});
  p2p::test::Proc follow(w.h, "follow", {"events", "--follow", "--json", "--endpoint", node.ws, "--program", node.program});
  std::this_thread::sleep_for(500ms);  // let it read the head first, so only new events show
  w.h.ok({"schedule", "--title", "Live", "--start", "+1h", "--duration", "1h", "--endpoint", node.http, "--program",
          node.program});
  auto line = follow.next_line(10s);
  ASSERT_TRUE(line) << "no event within 10 s";
  json e = json::parse(*line);
  EXPECT_EQ(e["event"], "StreamIsScheduled");
  EXPECT_NE(e["id"].get<std::string>().find("Live"), std::string::npos);
}

TEST(CliGearRpc, EventsOnTheLedgerComeFromItsLog) {
  World w;
  w.h.ok({"profile", "set", "--name", "Alice"});
  auto id = trim(w.h.ok({"schedule", "--title", "Jam", "--start", "+1h", "--duration", "1h"}));
  auto text = w.h.ok({"events"});
  EXPECT_NE(text.find("ProfileEdited"), std::string::npos) << text;
  EXPECT_NE(text.find("StreamIsScheduled " + id), std::string::npos) << text;
  json all = json::parse(w.h.ok({"events", "--json"}));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[1]["block"], 2);
  EXPECT_EQ(json::parse(w.h.ok({"events", "--json", "--from", "2"})).size(), 1u);
}
