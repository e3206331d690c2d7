// End to end: `p2pstream devnode` as a process on a free loopback port, spoken to with raw JSON-RPC over
// HTTP and WebSocket (a minimal client on plain sockets, so the test shares no code with lib/gear_rpc's
// transport). Extrinsics are signed with gear_rpc::build_signed; events are decoded with lib/metadata.
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

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "gear_rpc/extrinsic.hpp"
#include "fixtures.hpp"
#include "keys/ed25519.hpp"
#include "ledger/ledger.hpp"
#include "metadata/metadata.hpp"
#include "w3b/messages.hpp"

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kTimeout = std::chrono::seconds(20);

p2p::Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << path;
  return p2p::Bytes(std::istreambuf_iterator<char>(in), {});
}

const std::string kMetadataFile = std::string(P2P_SOURCE_DIR) + "/data/vara_runtime.scale";

const p2p::metadata::Metadata& vara() {
  static const auto m = p2p::metadata::Metadata::parse(read_file(kMetadataFile));
  return m;
}

int wait_ms_left(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// Reads what is available into buf; false on EOF, error or the deadline.
bool read_some(int fd, std::string& buf, Clock::time_point deadline) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, wait_ms_left(deadline)) <= 0) return false;
  char chunk[65536];
  ssize_t n = ::read(fd, chunk, sizeof chunk);
  if (n <= 0) return false;
  buf.append(chunk, static_cast<std::size_t>(n));
  return true;
}

// A devnode in its own private home.
struct Devnode {
  p2p::test::Home h;
  p2p::test::DevnodeServer server{h};
  std::uint16_t port() const { return server.port(); }
};

int connect_to(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

struct HttpReply {
  int status = 0;
  std::string body;
};

// One request on its own connection (Connection: close), read to EOF.
HttpReply http(std::uint16_t port, const std::string& method, const std::string& body,
               std::optional<std::string> content_length = std::nullopt) {
  HttpReply r;
  int fd = connect_to(port);
  if (fd < 0) return r;
  std::string req = method + " / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\n";
  req += "Content-Length: " + content_length.value_or(std::to_string(body.size())) + "\r\n\r\n" + body;
  send_all(fd, req);
  std::string raw;
  auto deadline = Clock::now() + kTimeout;
  while (read_some(fd, raw, deadline)) {
  }
  ::close(fd);
  auto sp = raw.find(' ');
  auto hdr_end = raw.find("\r\n\r\n");
  if (sp == std::string::npos || hdr_end == std::string::npos) return r;
  r.status = std::stoi(raw.substr(sp + 1, 3));
  r.body = raw.substr(hdr_end + 4);
  return r;
}

json rpc(std::uint16_t port, const std::string& method, json params = json::array()) {
  json req = {{"jsonrpc", "2.0"}, {"id", 1}, {"method", method}, {"params", std::move(params)}};
  auto r = http(port, "POST", req.dump());
  EXPECT_EQ(r.status, 200) << method << ": " << r.body;
  return r.body.empty() ? json() : json::parse(r.body);
}

json result(std::uint16_t port, const std::string& method, json params = json::array()) {
  json r = rpc(port, method, std::move(params));
  EXPECT_TRUE(r.contains("result")) << method << ": " << r.dump();
  return r.value("result", json());
}

// A minimal RFC 6455 client: text frames out (masked), frames in (unmasked), pings ignored.
class WebSocket {
 public:
  explicit WebSocket(std::uint16_t port) : fd_(connect_to(port)) {
    send_all(fd_,
             "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    auto deadline = Clock::now() + kTimeout;
    while (buf_.find("\r\n\r\n") == std::string::npos)
      if (!read_some(fd_, buf_, deadline)) break;
    auto end = buf_.find("\r\n\r\n");
    handshake_ = buf_.substr(0, end);
    buf_.erase(0, end == std::string::npos ? buf_.size() : end + 4);
  }
  ~WebSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool upgraded() const { return handshake_.rfind("HTTP/1.1 101", 0) == 0; }

  void send_text(const std::string& text) {
    std::string f;
    f.push_back(static_cast<char>(0x81));
    std::size_t n = text.size();
    if (n < 126) {
      f.push_back(static_cast<char>(0x80 | n));
    } else if (n < 65536) {
      f.push_back(static_cast<char>(0x80 | 126));
      f.push_back(static_cast<char>(n >> 8));
      f.push_back(static_cast<char>(n & 0xff));
    } else {
      f.push_back(static_cast<char>(0x80 | 127));
      for (int i = 7; i >= 0; --i) f.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
    }
    const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
    f.append(reinterpret_cast<const char*>(mask), 4);
    for (std::size_t i = 0; i < n; ++i) f.push_back(static_cast<char>(text[i] ^ mask[i % 4]));
    send_all(fd_, f);
  }
  void call(int id, const std::string& method, json params = json::array()) {
    send_text(json{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", std::move(params)}}.dump());
  }

  // The next text message as JSON; null on timeout or close.
  json next(std::chrono::milliseconds wait = kTimeout) {
    auto deadline = Clock::now() + wait;
    for (;;) {
      if (auto frame = take_frame()) {
        auto [opcode, payload] = *frame;
        if (opcode == 0x1) return json::parse(payload);
        if (opcode == 0x8) return json();
        continue;  // ping, pong
      }
      if (!read_some(fd_, buf_, deadline)) return json();
    }
  }
  // The next message with this "id", or the next notification with this subscription id.
  json next_matching(const std::function<bool(const json&)>& want) {
    auto deadline = Clock::now() + kTimeout;
    while (Clock::now() < deadline) {
      json m = next(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
      if (m.is_null()) return m;
      if (want(m)) return m;
    }
    return json();
  }

 private:
  std::optional<std::pair<int, std::string>> take_frame() {
    if (buf_.size() < 2) return std::nullopt;
    auto b = [&](std::size_t i) { return static_cast<unsigned char>(buf_[i]); };
    int opcode = b(0) & 0x0f;
    std::uint64_t len = b(1) & 0x7f;
    std::size_t pos = 2;
    if (len == 126) {
      if (buf_.size() < 4) return std::nullopt;
      len = (std::uint64_t{b(2)} << 8) | b(3);
      pos = 4;
    } else if (len == 127) {
      if (buf_.size() < 10) return std::nullopt;
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | b(2 + i);
      pos = 10;
    }
    if (buf_.size() < pos + len) return std::nullopt;
    std::string payload = buf_.substr(pos, len);
    buf_.erase(0, pos + len);
    return std::make_pair(opcode, payload);
  }
  int fd_;
  std::string buf_;
  std::string handshake_;
};

p2p::keys::Keypair test_key(std::uint8_t n) {
  p2p::keys::Seed s{};
  s.fill(n);
  return p2p::keys::Keypair::from_seed(s);
}

// A signed Gear.send_message of EditProfile(name) from what the node reports (genesis, versions, nonce).
std::string signed_edit_profile(std::uint16_t port, const p2p::keys::Keypair& k, const std::string& program,
                                const std::string& name) {
  auto genesis = p2p::hash32_from_hex(result(port, "chain_getBlockHash", {0}).get<std::string>());
  json version = result(port, "state_getRuntimeVersion");
  p2p::gear_rpc::SigningContext ctx;
  ctx.spec_version = version["specVersion"];
  ctx.tx_version = version["transactionVersion"];
  ctx.genesis = ctx.era_block_hash = genesis.value();
  ctx.nonce = result(port, "system_accountNextIndex", {p2p::keys::ss58_encode(k.public_key())});
  p2p::gear_rpc::SendMessageCall call;
  call.destination = p2p::hash32_from_hex(program).value();
  p2p::w3b::EditProfile p;
  p.name = name;
  call.payload = p2p::w3b::encode_command(p);
  call.gas_limit = result(port, "gear_calculateHandleGas",
                          {p2p::to_hex(k.public_key()), program, p2p::to_hex(call.payload), 0, false})["min_limit"];
  return p2p::to_hex(p2p::gear_rpc::build_signed(vara(), k, p2p::gear_rpc::encode_send_message(vara(), call), ctx));
}

// Polls until some block holds the extrinsic; returns {block hash, extrinsic index}.
std::pair<std::string, std::size_t> wait_for_inclusion(std::uint16_t port, const std::string& xt) {
  auto deadline = Clock::now() + kTimeout;
  std::uint64_t seen = 0;
  while (Clock::now() < deadline) {
    std::uint64_t best = std::stoull(result(port, "chain_getHeader")["number"].get<std::string>(), nullptr, 16);
    for (; seen <= best; ++seen) {
      std::string hash = result(port, "chain_getBlockHash", {seen});
      json xs = result(port, "chain_getBlock", {hash})["block"]["extrinsics"];
      for (std::size_t i = 0; i < xs.size(); ++i)
        if (xs[i] == xt) return {hash, i};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "extrinsic never included";
  return {"", 0};
}

}  // namespace

TEST(CliDevnode, PrintsItsUrlAndProgramAndStopsOnSigterm) {
  Devnode node;
  ASSERT_NE(node.port(), 0) << node.server.p.both();
  EXPECT_EQ(node.server.http.rfind("http://127.0.0.1:", 0), 0u) << node.server.http;
  EXPECT_EQ(node.server.program, p2p::to_hex(p2p::ledger::Ledger::program_id()));
  EXPECT_EQ(node.server.p.stop(), 0);
  EXPECT_NE(node.server.p.err().find("devnode stopped at block #"), std::string::npos) << node.server.p.err();
}

TEST(CliDevnode, RefusesBadFlags) {
  p2p::test::Home h;
  EXPECT_EQ(h.run({"devnode", "--listen", "0.0.0.0:0"}).code, 2);
  EXPECT_EQ(h.run({"devnode", "--listen", "127.0.0.1:0", "--block-time", "soon"}).code, 2);
  auto r = h.run({"devnode", "--listen", "127.0.0.1:0", "--metadata", (h.dir() / "missing.scale").string()});
  EXPECT_EQ(r.code, 2) << r.err;
}

TEST(CliDevnode, HttpAnswersLikeANode) {
  Devnode a, b;
  std::uint16_t port = a.port();
  ASSERT_NE(port, 0);
  std::string genesis = result(port, "chain_getBlockHash", {0});
  EXPECT_TRUE(p2p::hash32_from_hex(genesis)) << genesis;
  EXPECT_EQ(result(b.port(), "chain_getBlockHash", {0}), genesis);  // deterministic genesis

  json v = result(port, "state_getRuntimeVersion");
  EXPECT_EQ(v["specName"], "vara-testnet");
  EXPECT_EQ(v["specVersion"], 20000);
  EXPECT_EQ(v["transactionVersion"], 1);
  EXPECT_EQ(result(port, "state_getMetadata"), p2p::to_hex(read_file(kMetadataFile)));
  EXPECT_EQ(result(port, "system_properties")["ss58Format"], 137);

  // Blocks keep coming, and finality trails by one.
  auto n0 = std::stoull(result(port, "chain_getHeader")["number"].get<std::string>(), nullptr, 16);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  json head = result(port, "chain_getHeader");
  auto n1 = std::stoull(head["number"].get<std::string>(), nullptr, 16);
  EXPECT_GT(n1, n0);
  std::string fin = result(port, "chain_getFinalizedHead");
  auto fin_n = std::stoull(result(port, "chain_getHeader", {fin})["number"].get<std::string>(), nullptr, 16);
  EXPECT_LT(fin_n, std::stoull(result(port, "chain_getHeader")["number"].get<std::string>(), nullptr, 16));

  // Errors.
  auto r = http(port, "POST", "{\"jsonrpc\": ");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["error"]["code"], -32700);
  EXPECT_EQ(rpc(port, "no_such_method")["error"]["code"], -32601);
  EXPECT_EQ(rpc(port, "chain_getBlockHash", {"nope"})["error"]["code"], -32602);
  EXPECT_EQ(http(port, "GET", "").status, 405);
  // Announcing 100 MB is refused from the headers alone.
  r = http(port, "POST", "", "100000000");
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(json::parse(r.body)["code"], -32007);
}

TEST(CliDevnode, SubmittedMessageIsIncludedWithDecodableEvents) {
  Devnode node;
  std::uint16_t port = node.port();
  ASSERT_NE(port, 0);
  std::string program = node.server.program;
  auto k = test_key(1);
  std::string xt = signed_edit_profile(port, k, program, "Alice");
  std::string hash = result(port, "author_submitExtrinsic", {xt});
  EXPECT_EQ(hash, p2p::to_hex(p2p::blake2b_256(*p2p::from_hex(xt))));
  json again = rpc(port, "author_submitExtrinsic", {xt});
  EXPECT_EQ(again["error"]["code"], 1013);

  auto [block, index] = wait_for_inclusion(port, xt);
  ASSERT_FALSE(block.empty());
  EXPECT_GE(index, 1u);  // the timestamp inherent comes first
  EXPECT_EQ(result(port, "system_accountNextIndex", {p2p::to_hex(k.public_key())}), 1);

  std::string key = p2p::to_hex(vara().storage_key("System", "Events"));
  auto events = vara().decode_events(*p2p::from_hex(result(port, "state_getStorage", {key, block}).get<std::string>()));
  std::string msg_id;
  for (const auto& e : events)
    if (e.name == "MessageQueued" && e.phase == json{{"ApplyExtrinsic", index}}) msg_id = e.fields["id"];
  ASSERT_FALSE(msg_id.empty());
  bool replied = false, fee = false;
  for (const auto& e : events) {
    if (e.name == "UserMessageSent" && e.fields["message"]["details"].is_object() &&
        e.fields["message"]["details"]["to"] == msg_id) {
      EXPECT_EQ(e.fields["message"]["details"]["code"], (json{{"Success", "Auto"}}));
      EXPECT_EQ(e.fields["message"]["destination"], p2p::to_hex(k.public_key()));
      replied = true;
    }
    if (e.pallet == "TransactionPayment" && e.name == "TransactionFeePaid") fee = true;
  }
  EXPECT_TRUE(replied);
  EXPECT_TRUE(fee);

  // The state now holds the profile.
  json reply = result(port, "gear_calculateReplyForHandle",
                      {p2p::to_hex(p2p::Hash32{}), program, "0x3057334273747265616d696e67204765745374617465",
                       750000000000ull, 0});
  auto state = p2p::w3b::decode_state_reply(*p2p::from_hex(reply["payload"].get<std::string>()));
  ASSERT_EQ(state.users.size(), 1u);
  EXPECT_EQ(state.users[0].second.name, "Alice");

  // A bad signature is refused as a node refuses it.
  auto bad = *p2p::from_hex(signed_edit_profile(port, k, program, "Mallory"));
  bad[41] ^= 1;
  json refused = rpc(port, "author_submitExtrinsic", {p2p::to_hex(bad)});
  EXPECT_EQ(refused["error"], (json{{"code", 1010}, {"message", "Invalid Transaction"},
                                    {"data", "Transaction has a bad signature"}}));
}

TEST(CliDevnode, WebSocketWatchAndSubscriptions) {
  Devnode node;
  std::uint16_t port = node.port();
  ASSERT_NE(port, 0);
  std::string program = node.server.program;
  WebSocket ws(port);
  ASSERT_TRUE(ws.upgraded());

  ws.send_text("{oops");
  EXPECT_EQ(ws.next()["error"]["code"], -32700);
  ws.call(1, "chain_getBlockHash", {0});
  EXPECT_EQ(ws.next()["result"], result(port, "chain_getBlockHash", {0}));

  ws.call(2, "chain_subscribeNewHeads");
  json sub = ws.next_matching([](const json& m) { return m.value("id", 0) == 2; });
  ASSERT_TRUE(sub["result"].is_string()) << sub.dump();
  std::string heads = sub["result"];
  auto is_head = [&](const json& m) {
    return m.value("method", "") == "chain_newHead" && m["params"]["subscription"] == heads;
  };
  json h1 = ws.next_matching(is_head);
  json h2 = ws.next_matching(is_head);
  ASSERT_FALSE(h2.is_null());
  EXPECT_EQ(std::stoull(h2["params"]["result"]["number"].get<std::string>(), nullptr, 16),
            std::stoull(h1["params"]["result"]["number"].get<std::string>(), nullptr, 16) + 1);
  ws.call(3, "chain_unsubscribeNewHeads", {heads});
  EXPECT_EQ(ws.next_matching([](const json& m) { return m.value("id", 0) == 3; })["result"], true);

  std::string xt = signed_edit_profile(port, test_key(2), program, "Bob");
  ws.call(4, "author_submitAndWatchExtrinsic", {xt});
  json watch = ws.next_matching([](const json& m) { return m.value("id", 0) == 4; });
  ASSERT_TRUE(watch["result"].is_string()) << watch.dump();
  std::string id = watch["result"];
  std::vector<json> statuses;
  while (statuses.empty() || !statuses.back().is_object() || !statuses.back().contains("finalized")) {
    json m = ws.next_matching([&](const json& m) {
      return m.value("method", "") == "author_extrinsicUpdate" && m["params"]["subscription"] == id;
    });
    ASSERT_FALSE(m.is_null()) << "statuses so far: " << json(statuses).dump();
    statuses.push_back(m["params"]["result"]);
  }
  ASSERT_EQ(statuses.size(), 3u) << json(statuses).dump();
  EXPECT_EQ(statuses[0], "ready");
  std::string in_block = statuses[1]["inBlock"];
  EXPECT_EQ(statuses[2]["finalized"], in_block);
  json block = result(port, "chain_getBlock", {in_block});
  auto xs = block["block"]["extrinsics"];
  EXPECT_NE(std::find(xs.begin(), xs.end(), xt), xs.end());
}
