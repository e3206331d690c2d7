// devnode/rpc: the stand-in node's JSON-RPC 2.0 dispatcher: the Substrate/Gear method subset, request and
// batch parsing, error objects, and subscriptions (new heads, finalized heads, extrinsic watches). No sockets:
// the server hands it request bodies and a Session to push notifications to, so tests can drive it directly.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "devnode/chain.hpp"

namespace p2p::devnode {

// One WebSocket connection, as the dispatcher sees it: somewhere to push notifications.
class Session {
 public:
  virtual ~Session() = default;
  virtual void send(const std::string& text) = 0;
};

struct RpcOptions {
  std::string node_version = "0.0.0";
  std::size_t max_batch = 256;   // requests in one batch
  int max_depth = 64;            // JSON nesting accepted in a request
};

class Rpc {
 public:
  // metadata_blob is what state_getMetadata returns (the bytes the Chain's Metadata was parsed from).
  Rpc(Chain& chain, ByteView metadata_blob, RpcOptions opts = {});

  struct Answer {
    std::string response;             // empty when the body held only notifications
    std::vector<std::string> after;   // notifications to push on the same session after the response
  };
  // One HTTP body or WebSocket text message: a request object or a batch. session is null over HTTP.
  Answer handle(std::string_view body, Session* session);

  // After each produced block: new heads, finalized heads and extrinsic status updates.
  void on_block(const Block& block);
  // Forget a closed connection's subscriptions.
  void close(Session* session);

  std::vector<std::string> methods() const;
  std::size_t subscription_count() const { return subs_.size(); }
  // Called with the method name of every request (the CLI's -v log).
  std::function<void(const std::string&)> on_request;

 private:
  enum class SubKind { new_heads, finalized_heads, extrinsic };
  struct Sub {
    SubKind kind;
    Session* session = nullptr;
    Hash32 tx{};                     // extrinsic watches only
    std::optional<TxStatus> status;  // last status sent while pooled
    std::optional<Hash32> in_block;  // the block that included it
  };
  using Handler = std::function<nlohmann::json(const nlohmann::json& params, Session* s, Answer& a)>;

  nlohmann::json handle_one(const nlohmann::json& req, Session* session, Answer& a, bool& notification);
  void register_methods();
  std::string subscribe(SubKind kind, Session* s);
  bool unsubscribe(SubKind kind, const nlohmann::json& params, Session* s);
  void notify(const std::string& id, const Sub& sub, const nlohmann::json& result, std::vector<std::string>& out) const;
  void flush(std::vector<std::pair<Session*, std::string>>& out);
  const Block& block_at(const nlohmann::json& params, std::size_t index) const;

  Chain& chain_;
  RpcOptions opts_;
  std::string metadata_hex_;
  std::map<std::string, Handler> handlers_;
  std::map<std::string, Sub> subs_;
  std::uint64_t next_sub_ = 1;
  std::uint64_t finalized_sent_ = 0;
};

}  // namespace p2p::devnode
