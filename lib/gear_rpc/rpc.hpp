// gear_rpc/rpc: JSON-RPC 2.0 to a Substrate/Gear node, over HTTP(S) (libcurl) or WebSocket (libsoup-3.0
// on a private GMainContext, driven synchronously). Transport failures become UnreachableError naming the
// URL, node-side errors RpcError, and anything that is not a well-formed answer RuntimeError.
#pragma once
#include <chrono>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "util/error.hpp"

namespace p2p::gear_rpc {

// A JSON-RPC error object the node answered with.
class RpcError : public Error {
 public:
  RpcError(std::string url, std::string method, std::int64_t code, std::string message, nlohmann::json data);
  std::int64_t rpc_code() const { return code_; }
  const std::string& rpc_message() const { return message_; }
  const nlohmann::json& data() const { return data_; }
  const std::string& method() const { return method_; }
  // message and data together, as text: where a node puts a runtime's reasons.
  std::string details() const;

 private:
  std::string method_;
  std::int64_t code_;
  std::string message_;
  nlohmann::json data_;
};

class RpcClient {
 public:
  virtual ~RpcClient() = default;
  // One request; returns the "result" member (which may be null).
  virtual nlohmann::json call(const std::string& method, const nlohmann::json& params) = 0;
  virtual const std::string& url() const = 0;
};

struct RpcOptions {
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds request_timeout{30000};
  std::size_t max_answer_bytes = 64u << 20;  // metadata is ~0.6 MB of hex; this bounds a hostile node
};

// mainnet, testnet and local map to gcli's URLs; anything else must be an http(s):// or ws(s):// URL.
std::string endpoint_url(const std::string& name_or_url);

// Chooses HTTP or WebSocket by the URL's scheme. The WebSocket client connects here (UnreachableError
// when it cannot); the HTTP one on its first call.
std::unique_ptr<RpcClient> connect(const std::string& name_or_url, const RpcOptions& opts = {});

std::unique_ptr<RpcClient> make_http_client(const std::string& url, const RpcOptions& opts = {});
std::unique_ptr<RpcClient> make_ws_client(const std::string& url, const RpcOptions& opts = {});

// The request text and the parsing of one answer, shared by both transports (and tested on their own).
std::string request_body(std::uint64_t id, const std::string& method, const nlohmann::json& params);
// Throws RpcError for an error answer, RuntimeError "malformed answer from <url> to <method>" otherwise.
nlohmann::json parse_answer(const std::string& url, const std::string& method, std::uint64_t id,
                            const std::string& body);

}  // namespace p2p::gear_rpc
