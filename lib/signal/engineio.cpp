// signal/engineio: Engine.IO v4 / Socket.IO v5 packet codec. Every parse is bounded in size
// and JSON depth and reports problems as Result errors; nothing here throws on bad input.
#include "signal/engineio.hpp"

#include <algorithm>
#include <array>

namespace p2p::signal {
namespace {

// A byte for an error message: printable as is, otherwise as \xNN.
std::string show_char(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7f) return std::string("'") + c + "'";
  static constexpr char digits[] = "0123456789abcdef";
  return std::string("\\x") + digits[u >> 4] + digits[u & 0x0f];
}

std::string too_long(std::string_view what, std::size_t size, std::size_t max) {
  return std::string(what) + " of " + std::to_string(size) + " bytes exceeds the " + std::to_string(max) +
         "-byte limit";
}

// Nesting depth of JSON text, counted without parsing, so that a hostile "[[[[..." is refused
// before any parser recursion or allocation. Returns max_depth + 1 as soon as it is exceeded.
int json_depth(std::string_view text, int max_depth) {
  int depth = 0;
  int deepest = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > max_depth) return deepest;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// The payload rules socket.io-parser applies, so we refuse what a real server would.
std::optional<std::string> check_sio_payload(SioType type, const std::optional<Json>& data) {
  switch (type) {
    case SioType::connect:
      if (data && !data->is_object()) return "CONNECT payload must be a JSON object";
      return std::nullopt;
    case SioType::disconnect:
      if (data) return "DISCONNECT carries no payload";
      return std::nullopt;
    case SioType::connect_error:
      if (data && !data->is_object() && !data->is_string()) return "CONNECT_ERROR payload must be an object or a string";
      return std::nullopt;
    case SioType::event:
      if (!data || !data->is_array() || data->empty()) return "EVENT payload must be a non-empty JSON array";
      if (!(*data)[0].is_string()) return "EVENT name (the first array element) must be a string";
      if (is_reserved_event((*data)[0].get_ref<const std::string&>()))
        return "EVENT name '" + (*data)[0].get<std::string>() + "' is reserved by socket.io";
      return std::nullopt;
    case SioType::ack:
      if (!data || !data->is_array()) return "ACK payload must be a JSON array";
      return std::nullopt;
    case SioType::binary_event:
    case SioType::binary_ack:
      break;
  }
  return "binary Socket.IO packets are not supported";
}

}  // namespace

// ---- JSON ----

Result<Json> parse_json(std::string_view text, int max_depth) {
  if (json_depth(text, max_depth) > max_depth)
    return Result<Json>::fail("JSON nests deeper than " + std::to_string(max_depth) + " levels");
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Result<Json>::fail("invalid JSON");
  return Result<Json>::ok(std::move(j));
}

std::string dump_json(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

// ---- Engine.IO ----

std::string encode(const EioPacket& p) {
  std::string out;
  out.reserve(p.data.size() + 1);
  out += static_cast<char>(p.type);
  out += p.data;
  return out;
}

Result<EioPacket> parse_eio(std::string_view frame, std::size_t max_size) {
  using R = Result<EioPacket>;
  if (frame.empty()) return R::fail("empty Engine.IO packet");
  if (frame.size() > max_size) return R::fail(too_long("Engine.IO packet", frame.size(), max_size));
  char t = frame[0];
  if (t == 'b') return R::fail("binary Engine.IO packets (base64 'b' prefix) are not supported; send text");
  if (t < '0' || t > '6') return R::fail("unknown Engine.IO packet type " + show_char(t));
  return R::ok(EioPacket{static_cast<EioType>(t), std::string(frame.substr(1))});
}

Result<std::vector<EioPacket>> parse_payload(std::string_view body, std::size_t max_size, std::size_t max_packets) {
  using R = Result<std::vector<EioPacket>>;
  if (body.size() > max_size) return R::fail(too_long("polling payload", body.size(), max_size));
  std::vector<EioPacket> out;
  std::size_t start = 0;
  while (true) {
    std::size_t end = body.find(kRecordSeparator, start);
    std::string_view part = body.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (out.size() == max_packets)
      return R::fail("polling payload has more than " + std::to_string(max_packets) + " packets");
    auto p = parse_eio(part, max_size);
    if (!p) return R::fail("packet " + std::to_string(out.size() + 1) + " of the payload: " + p.error());
    out.push_back(std::move(p).value());
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return R::ok(std::move(out));
}

std::string join_payload(const std::vector<std::string>& encoded) {
  std::string out;
  for (std::size_t i = 0; i < encoded.size(); ++i) {
    if (i) out += kRecordSeparator;
    out += encoded[i];
  }
  return out;
}

std::string encode_open(const OpenInfo& info) {
  Json j;
  j["sid"] = info.sid;
  j["upgrades"] = info.upgrades;
  j["pingInterval"] = info.ping_interval_ms;
  j["pingTimeout"] = info.ping_timeout_ms;
  j["maxPayload"] = info.max_payload;
  return "0" + dump_json(j);
}

// ---- Socket.IO ----

bool is_reserved_event(std::string_view name) {
  static constexpr std::array<std::string_view, 6> kReserved = {
      "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"};
  return std::find(kReserved.begin(), kReserved.end(), name) != kReserved.end();
}

std::string encode_sio(const SioPacket& p) {
  std::string out(1, static_cast<char>('0' + static_cast<int>(p.type)));
  if (!p.nsp.empty() && p.nsp != "/") out += p.nsp + ",";
  if (p.ack_id) out += std::to_string(*p.ack_id);
  if (p.data) out += dump_json(*p.data);
  return out;
}

std::string encode_message(const SioPacket& p) { return "4" + encode_sio(p); }

Result<SioPacket> parse_sio(std::string_view text, const SioLimits& limits) {
  using R = Result<SioPacket>;
  if (text.empty()) return R::fail("empty Socket.IO packet");
  if (text.size() > limits.max_size) return R::fail(too_long("Socket.IO packet", text.size(), limits.max_size));
  char t = text[0];
  if (t < '0' || t > '6') return R::fail("unknown Socket.IO packet type " + show_char(t));
  SioPacket p;
  p.type = static_cast<SioType>(t - '0');
  if (p.type == SioType::binary_event || p.type == SioType::binary_ack)
    return R::fail("binary Socket.IO packets are not supported; send JSON events");
  std::size_t i = 1;

  if (i < text.size() && text[i] == '/') {  // namespace, up to the comma
    std::size_t comma = text.find(',', i);
    std::size_t end = comma == std::string_view::npos ? text.size() : comma;
    if (end - i > limits.max_nsp) return R::fail(too_long("namespace", end - i, limits.max_nsp));
    p.nsp = std::string(text.substr(i, end - i));
    i = comma == std::string_view::npos ? end : end + 1;
  }

  std::size_t digits = 0;
  while (i + digits < text.size() && is_digit(text[i + digits])) ++digits;
  if (digits > 0) {
    // 15 digits stay below 2^53, the largest id a JavaScript peer can count to exactly.
    if (digits > 15) return R::fail("ack id has more than 15 digits");
    std::uint64_t id = 0;
    for (std::size_t k = 0; k < digits; ++k) id = id * 10 + static_cast<std::uint64_t>(text[i + k] - '0');
    p.ack_id = id;
    i += digits;
  }

  if (i < text.size()) {
    auto j = parse_json(text.substr(i), limits.max_json_depth);
    if (!j) return R::fail("Socket.IO payload: " + j.error());
    p.data = std::move(j).value();
  }
  if (p.type == SioType::ack && !p.ack_id) return R::fail("ACK packet without an ack id");
  if (auto problem = check_sio_payload(p.type, p.data)) return R::fail(*problem);
  return R::ok(std::move(p));
}

}  // namespace p2p::signal
