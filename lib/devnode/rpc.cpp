// devnode/rpc: the JSON-RPC dispatcher of the stand-in node (see rpc.hpp): methods, params, subscriptions.
#include "devnode/rpc.hpp"

#include <fmt/format.h>
#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "util/error.hpp"

namespace p2p::devnode {
namespace {

using nlohmann::json;

constexpr int kUnknownBlock = 4003;  // Substrate's state API "Client error"

RpcError bad_params(std::string why) { return RpcError(rpc_code::invalid_params, "Invalid params", std::move(why)); }

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json error_response(const json& id, const RpcError& e) {
  return {{"jsonrpc", "2.0"}, {"error", e.to_json()}, {"id", id}};
}

// Nesting deeper than `limit` is refused before parsing, so no later walk of the tree can recurse deeply.
bool too_deep(std::string_view body, int limit) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

const json& param(const json& params, std::size_t i) {
  static const json null_value;
  return params.is_array() && i < params.size() ? params[i] : null_value;
}

void arity(const json& params, std::size_t max) {
  if (params.is_array() && params.size() > max)
    throw bad_params(fmt::format("expected at most {} parameters, got {}", max, params.size()));
}

std::string str_param(const json& v, std::string_view what) {
  if (!v.is_string()) throw bad_params(fmt::format("{} must be a string", what));
  return v.get<std::string>();
}

Hash32 hash_param(const json& v, std::string_view what) {
  auto h = hash32_from_hex(str_param(v, what));
  if (!h) throw bad_params(fmt::format("{} must be 0x followed by 64 hex digits", what));
  return *h;
}

Bytes bytes_param(const json& v, std::string_view what) {
  auto b = from_hex(str_param(v, what));
  if (!b) throw bad_params(fmt::format("{} must be 0x-prefixed hex bytes", what));
  return *b;
}

// A number as JSON number, decimal string or 0x hex string (clients differ for u64/u128).
scale::u128 uint_param(const json& v, std::string_view what, scale::u128 max) {
  scale::u128 out = 0;
  auto fail = [&] { return bad_params(fmt::format("{} must be an unsigned integer", what)); };
  if (v.is_number_unsigned()) {
    out = v.get<std::uint64_t>();
  } else if (v.is_string()) {
    std::string s = v.get<std::string>();
    unsigned base = 10;
    std::string_view digits = s;
    if (digits.starts_with("0x") || digits.starts_with("0X")) {
      base = 16;
      digits.remove_prefix(2);
    }
    if (digits.empty() || digits.size() > 40) throw fail();
    for (char c : digits) {
      int d = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
              : (base == 16 && std::isxdigit(static_cast<unsigned char>(c))) ? (std::tolower(c) - 'a' + 10)
                                                                                : -1;
      if (d < 0) throw fail();
      if (out > (max - static_cast<unsigned>(d)) / base) throw bad_params(fmt::format("{} is too large", what));
      out = out * base + static_cast<unsigned>(d);
    }
  } else {
    throw fail();
  }
  if (out > max) throw bad_params(fmt::format("{} is too large", what));
  return out;
}

std::uint64_t u64_param(const json& v, std::string_view what) {
  return static_cast<std::uint64_t>(uint_param(v, what, UINT64_MAX));
}

bool bool_param(const json& v, std::string_view what, bool fallback) {
  if (v.is_null()) return fallback;
  if (!v.is_boolean()) throw bad_params(fmt::format("{} must be true or false", what));
  return v.get<bool>();
}

keys::PublicKey account_param(const json& v) {
  try {
    return keys::parse_address(str_param(v, "the account"));
  } catch (const UsageError& e) {
    throw bad_params(e.what());
  }
}

std::string random_id() {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string id;
  for (int i = 0; i < 16; ++i) id.push_back(kAlphabet[randombytes_uniform(sizeof kAlphabet - 1)]);
  return id;
}

json block_json(const Block& b) {
  json xs = json::array();
  for (const auto& x : b.extrinsics) xs.push_back(to_hex(x));
  return {{"block", {{"header", b.header.to_json()}, {"extrinsics", xs}}}, {"justifications", nullptr}};
}

}  // namespace

Rpc::Rpc(Chain& chain, ByteView metadata_blob, RpcOptions opts)
    : chain_(chain), opts_(std::move(opts)), metadata_hex_(to_hex(metadata_blob)) {
  finalized_sent_ = chain_.finalized().header.number;
  register_methods();
}

std::vector<std::string> Rpc::methods() const {
  std::vector<std::string> out;
  for (const auto& [name, h] : handlers_) out.push_back(name);
  return out;
}

const Block& Rpc::block_at(const json& params, std::size_t index) const {
  const json& v = param(params, index);
  if (v.is_null()) return chain_.best();
  Hash32 h = hash_param(v, "the block hash");
  const Block* b = chain_.block(h);
  if (!b) throw RpcError(kUnknownBlock, fmt::format("Client error: UnknownBlock: header not found for {}", to_hex(h)));
  return *b;
}

namespace {
void require_websocket(const Session* s) {
  if (!s)
    throw RpcError(rpc_code::method_not_found, "Method not found",
                   "subscriptions need a WebSocket connection (ws://), not HTTP");
}
}  // namespace

std::string Rpc::subscribe(SubKind kind, Session* s) {
  require_websocket(s);
  std::string id = random_id();
  while (subs_.count(id)) id = random_id();
  subs_[id] = Sub{kind, s, {}, {}, {}};
  return id;
}

bool Rpc::unsubscribe(SubKind kind, const json& params, Session* s) {
  arity(params, 1);
  auto it = subs_.find(str_param(param(params, 0), "the subscription id"));
  if (it == subs_.end() || it->second.kind != kind || it->second.session != s) return false;
  subs_.erase(it);
  return true;
}

void Rpc::notify(const std::string& id, const Sub& sub, const json& result, std::vector<std::string>& out) const {
  const char* method = sub.kind == SubKind::new_heads         ? "chain_newHead"
                       : sub.kind == SubKind::finalized_heads ? "chain_finalizedHead"
                                                              : "author_extrinsicUpdate";
  json n = {{"jsonrpc", "2.0"},
            {"method", method},
            {"params", {{"subscription", id}, {"result", result}}}};
  out.push_back(dump(n));
}

void Rpc::register_methods() {
  auto& h = handlers_;
  h["rpc_methods"] = [this](const json&, Session*, Answer&) -> json {
    return {{"version", 1}, {"methods", methods()}};
  };
  h["system_chain"] = [](const json&, Session*, Answer&) -> json { return "p2pstream devnode"; };
  h["system_name"] = [](const json&, Session*, Answer&) -> json { return "p2pstream-devnode"; };
  h["system_version"] = [this](const json&, Session*, Answer&) -> json { return opts_.node_version; };
  h["system_health"] = [](const json&, Session*, Answer&) -> json {
    return {{"peers", 0}, {"isSyncing", false}, {"shouldHavePeers", false}};
  };
  h["system_properties"] = [](const json&, Session*, Answer&) -> json {
    return {{"ss58Format", keys::kVaraPrefix}, {"tokenDecimals", 12}, {"tokenSymbol", "VARA"}};
  };
  h["system_accountNextIndex"] = [this](const json& p, Session*, Answer&) -> json {
    arity(p, 1);
    return chain_.account_next_index(account_param(param(p, 0)));
  };

  h["chain_getBlockHash"] = [this](const json& p, Session*, Answer&) -> json {
    arity(p, 1);
    auto one = [&](const json& v) -> json {
      if (v.is_null()) return to_hex(chain_.best().hash);
      const Block* b = chain_.block(u64_param(v, "the block number"));
      return b ? json(to_hex(b->hash)) : json(nullptr);
    };
    const json& v = param(p, 0);
    if (!v.is_array()) return one(v);
    if (v.size() > opts_.max_batch) throw bad_params("too many block numbers");
    json out = json::array();
    for (const auto& x : v) out.push_back(one(x));
    return out;
  };
  auto header_or_null = [this](const json& p, bool whole) -> json {
    arity(p, 1);
    const json& v = param(p, 0);
    const Block* b = v.is_null() ? &chain_.best() : chain_.block(hash_param(v, "the block hash"));
    if (!b) return nullptr;
    return whole ? block_json(*b) : b->header.to_json();
  };
  h["chain_getHeader"] = [header_or_null](const json& p, Session*, Answer&) { return header_or_null(p, false); };
  h["chain_getBlock"] = [header_or_null](const json& p, Session*, Answer&) { return header_or_null(p, true); };
  h["chain_getFinalizedHead"] = [this](const json& p, Session*, Answer&) -> json {
    arity(p, 0);
    return to_hex(chain_.finalized().hash);
  };
  h["chain_getFinalisedHead"] = h["chain_getFinalizedHead"];

  auto subscribe_heads = [this](SubKind kind) {
    return [this, kind](const json& p, Session* s, Answer& a) -> json {
      arity(p, 0);
      std::string id = subscribe(kind, s);
      // Substrate sends the current head at once.
      const Block& b = kind == SubKind::new_heads ? chain_.best() : chain_.finalized();
      notify(id, subs_[id], b.header.to_json(), a.after);
      return id;
    };
  };
  auto unsubscribe_heads = [this](SubKind kind) {
    return [this, kind](const json& p, Session* s, Answer&) -> json { return unsubscribe(kind, p, s); };
  };
  h["chain_subscribeNewHeads"] = subscribe_heads(SubKind::new_heads);
  h["chain_unsubscribeNewHeads"] = unsubscribe_heads(SubKind::new_heads);
  h["chain_subscribeFinalizedHeads"] = subscribe_heads(SubKind::finalized_heads);
  h["chain_unsubscribeFinalizedHeads"] = unsubscribe_heads(SubKind::finalized_heads);
  h["chain_subscribeFinalisedHeads"] = h["chain_subscribeFinalizedHeads"];
  h["chain_unsubscribeFinalisedHeads"] = h["chain_unsubscribeFinalizedHeads"];

  h["state_getRuntimeVersion"] = [this](const json& p, Session*, Answer&) -> json {
    arity(p, 1);
    (void)block_at(p, 0);
    return chain_.runtime_version().to_json();
  };
  h["chain_getRuntimeVersion"] = h["state_getRuntimeVersion"];
  h["state_getMetadata"] = [this](const json& p, Session*, Answer&) -> json {
    arity(p, 1);
    (void)block_at(p, 0);
    return metadata_hex_;
  };
  h["state_getStorage"] = [this](const json& p, Session*, Answer&) -> json {
    arity(p, 2);
    Bytes key = bytes_param(param(p, 0), "the storage key");
    auto value = chain_.storage(key, block_at(p, 1));
    return value ? json(to_hex(*value)) : json(nullptr);
  };
  h["state_getStorageAt"] = h["state_getStorage"];

  h["author_submitExtrinsic"] = [this](const json& p, Session*, Answer&) -> json {
    arity(p, 1);
    return to_hex(chain_.submit(bytes_param(param(p, 0), "the extrinsic")).hash);
  };
  h["author_submitAndWatchExtrinsic"] = [this](const json& p, Session* s, Answer& a) -> json {
    arity(p, 1);
    require_websocket(s);  // before the pool sees it
    auto submitted = chain_.submit(bytes_param(param(p, 0), "the extrinsic"));
    std::string id = subscribe(SubKind::extrinsic, s);
    Sub& sub = subs_[id];
    sub.tx = submitted.hash;
    sub.status = submitted.status;
    notify(id, sub, submitted.status == TxStatus::ready ? "ready" : "future", a.after);
    return id;
  };
  h["author_unwatchExtrinsic"] = [this](const json& p, Session* s, Answer&) -> json {
    return unsubscribe(SubKind::extrinsic, p, s);
  };
  h["author_pendingExtrinsics"] = [this](const json& p, Session*, Answer&) -> json {
    arity(p, 0);
    json out = json::array();
    for (const auto& x : chain_.pending()) out.push_back(to_hex(x));
    return out;
  };

  h["gear_calculateHandleGas"] = [this](const json& p, Session*, Answer&) -> json {
    arity(p, 6);
    Hash32 source = hash_param(param(p, 0), "source");
    Hash32 dest = hash_param(param(p, 1), "destination");
    Bytes payload = bytes_param(param(p, 2), "payload");
    (void)uint_param(param(p, 3), "value", ~scale::u128{0});
    (void)bool_param(param(p, 4), "allow_other_panics", false);
    (void)block_at(p, 5);
    return chain_.calculate_handle_gas(source, dest, payload).to_json();
  };
  h["gear_calculateReplyForHandle"] = [this](const json& p, Session*, Answer&) -> json {
    arity(p, 6);
    Hash32 origin = hash_param(param(p, 0), "origin");
    Hash32 dest = hash_param(param(p, 1), "destination");
    Bytes payload = bytes_param(param(p, 2), "payload");
    std::uint64_t gas = u64_param(param(p, 3), "gas_limit");
    (void)uint_param(param(p, 4), "value", ~scale::u128{0});
    (void)block_at(p, 5);
    return chain_.calculate_reply_for_handle(origin, dest, payload, gas).to_json();
  };
}

json Rpc::handle_one(const json& req, Session* session, Answer& a, bool& notification) {
  notification = false;
  const RpcError invalid(rpc_code::invalid_request, "Invalid request");
  if (!req.is_object()) return error_response(nullptr, invalid);
  json id = nullptr;
  if (req.contains("id")) {
    id = req["id"];
    if (!id.is_null() && !id.is_number() && !id.is_string()) return error_response(nullptr, invalid);
  } else {
    notification = true;
  }
  auto method = req.find("method");
  auto params = req.find("params");
  if (req.value("jsonrpc", json()) != "2.0" || method == req.end() || !method->is_string())
    return error_response(id, invalid);
  const std::string name = method->get<std::string>();
  if (on_request) on_request(name);
  json p = params == req.end() ? json() : *params;
  try {
    if (!p.is_null() && !p.is_array()) throw bad_params("params must be an array (positional parameters)");
    auto h = handlers_.find(name);
    if (h == handlers_.end()) throw RpcError(rpc_code::method_not_found, "Method not found");
    json result = h->second(p, session, a);
    return {{"jsonrpc", "2.0"}, {"result", std::move(result)}, {"id", id}};
  } catch (const RpcError& e) {
    return error_response(id, e);
  } catch (const UsageError& e) {
    return error_response(id, bad_params(e.what()));
  } catch (const std::exception& e) {
    return error_response(id, RpcError(rpc_code::internal_error, "Internal error", e.what()));
  }
}

Rpc::Answer Rpc::handle(std::string_view body, Session* session) {
  Answer a;
  auto parse_error = [&](std::string why) {
    a.response = dump(error_response(nullptr, RpcError(rpc_code::parse_error, "Parse error", std::move(why))));
    return a;
  };
  if (too_deep(body, opts_.max_depth)) return parse_error(fmt::format("nesting deeper than {}", opts_.max_depth));
  json j = json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded()) return parse_error("the body is not valid JSON");
  bool notification = false;
  if (!j.is_array()) {
    json r = handle_one(j, session, a, notification);
    if (!notification) a.response = dump(r);
    return a;
  }
  if (j.empty() || j.size() > opts_.max_batch) {
    a.response = dump(error_response(
        nullptr, RpcError(rpc_code::invalid_request, "Invalid request",
                          j.empty() ? "empty batch" : fmt::format("batches hold at most {} requests", opts_.max_batch))));
    return a;
  }
  json out = json::array();
  for (const auto& req : j) {
    json r = handle_one(req, session, a, notification);
    if (!notification) out.push_back(std::move(r));
  }
  if (!out.empty()) a.response = dump(out);
  return a;
}

void Rpc::on_block(const Block& block) {
  std::vector<std::pair<Session*, std::string>> out;
  auto push = [&](const std::string& id, const Sub& sub, const json& result) {
    std::vector<std::string> texts;
    notify(id, sub, result, texts);
    for (auto& t : texts) out.emplace_back(sub.session, std::move(t));
  };
  const std::uint64_t fin = chain_.finalized().header.number;
  // New heads first, then finality, then transaction statuses: the order a node reports them in.
  for (const auto& [id, sub] : subs_)
    if (sub.kind == SubKind::new_heads) push(id, sub, block.header.to_json());
  for (const auto& [id, sub] : subs_)
    if (sub.kind == SubKind::finalized_heads)
      for (std::uint64_t n = finalized_sent_ + 1; n <= fin; ++n) push(id, sub, chain_.block(n)->header.to_json());
  std::set<Hash32> included;
  for (const auto& x : block.extrinsics) included.insert(gear_rpc::extrinsic_hash(x));
  auto dropped = chain_.take_dropped();
  for (auto it = subs_.begin(); it != subs_.end();) {
    auto& [id, sub] = *it;
    bool done = false;
    if (sub.kind == SubKind::extrinsic) {
      if (!sub.in_block && included.count(sub.tx)) {
        sub.in_block = block.hash;
        push(id, sub, json{{"inBlock", to_hex(block.hash)}});
      }
      if (sub.in_block) {
        const Block* b = chain_.block(*sub.in_block);
        if (b && b->header.number <= fin) {
          push(id, sub, json{{"finalized", to_hex(b->hash)}});
          done = true;  // a final status ends the subscription
        }
      } else if (auto st = chain_.pool_status(sub.tx)) {
        if (st != sub.status) push(id, sub, *st == TxStatus::ready ? "ready" : "future");
        sub.status = st;
      } else {
        bool was_dropped = std::find(dropped.begin(), dropped.end(), sub.tx) != dropped.end();
        push(id, sub, was_dropped ? "invalid" : "dropped");
        done = true;
      }
    }
    it = done ? subs_.erase(it) : std::next(it);
  }
  finalized_sent_ = std::max(finalized_sent_, fin);
  flush(out);
}

void Rpc::flush(std::vector<std::pair<Session*, std::string>>& out) {
  for (auto& [session, text] : out) session->send(text);
  out.clear();
}

void Rpc::close(Session* session) {
  for (auto it = subs_.begin(); it != subs_.end();) it = it->second.session == session ? subs_.erase(it) : std::next(it);
}

}  // namespace p2p::devnode
