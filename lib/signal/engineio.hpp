// signal/engineio: Engine.IO v4 and Socket.IO v5 packet text, encoded and parsed.
// Pure and bounded: parsing never throws on malformed input, it returns an error value.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "signal/result.hpp"

namespace p2p::signal {

// ordered_json keeps the sender's key order, so forwarded payloads leave as they came.
using Json = nlohmann::ordered_json;

// ---- JSON with bounds ----

inline constexpr int kDefaultMaxJsonDepth = 32;

// Parses one JSON text. Fails (without throwing) on bad JSON or nesting deeper than max_depth.
Result<Json> parse_json(std::string_view text, int max_depth = kDefaultMaxJsonDepth);

// Compact JSON text; never throws (invalid UTF-8 cannot occur in parsed values, and is replaced otherwise).
std::string dump_json(const Json& j);

// ---- Engine.IO v4 ----

enum class EioType : char {
  open = '0',
  close = '1',
  ping = '2',
  pong = '3',
  message = '4',
  upgrade = '5',
  noop = '6',
};

struct EioPacket {
  EioType type = EioType::noop;
  std::string data;  // everything after the type digit, e.g. "probe" or a Socket.IO packet
  bool operator==(const EioPacket&) const = default;
};

inline constexpr std::size_t kDefaultMaxPayload = 1'000'000;
inline constexpr char kRecordSeparator = '\x1e';

std::string encode(const EioPacket& p);

// One text frame. Rejects empty frames, unknown type digits, base64 binary ("b...") packets
// and frames longer than max_size.
Result<EioPacket> parse_eio(std::string_view frame, std::size_t max_size = kDefaultMaxPayload);

// A polling body: packets joined with \x1e. Fails on the first bad packet, on a body longer
// than max_size, or on more than max_packets packets.
Result<std::vector<EioPacket>> parse_payload(std::string_view body, std::size_t max_size = kDefaultMaxPayload,
                                             std::size_t max_packets = 256);
// Joins already encoded packets with \x1e.
std::string join_payload(const std::vector<std::string>& encoded);

struct OpenInfo {
  std::string sid;
  std::vector<std::string> upgrades;  // {"websocket"} on polling, empty on websocket
  std::int64_t ping_interval_ms = 25000;
  std::int64_t ping_timeout_ms = 20000;
  std::size_t max_payload = kDefaultMaxPayload;
};
// 0{"sid":...,"upgrades":[...],"pingInterval":...,"pingTimeout":...,"maxPayload":...}
std::string encode_open(const OpenInfo& info);

// ---- Socket.IO v5 ----

enum class SioType : int {
  connect = 0,
  disconnect = 1,
  event = 2,
  ack = 3,
  connect_error = 4,
  binary_event = 5,
  binary_ack = 6,
};

struct SioPacket {
  SioType type = SioType::event;
  std::string nsp = "/";
  std::optional<std::uint64_t> ack_id;
  std::optional<Json> data;  // CONNECT: object; EVENT/ACK: array; CONNECT_ERROR: object or string
  bool operator==(const SioPacket&) const = default;
};

struct SioLimits {
  std::size_t max_size = 100'000;  // bytes of Socket.IO packet text
  int max_json_depth = kDefaultMaxJsonDepth;
  std::size_t max_nsp = 128;
};

// The Socket.IO packet text alone (what travels inside Engine.IO message "4").
std::string encode_sio(const SioPacket& p);
// The full Engine.IO message: "4" + encode_sio(p).
std::string encode_message(const SioPacket& p);

// Parses the text inside an Engine.IO message. Binary packets (types 5 and 6) are refused:
// p2pstream's events carry JSON only.
Result<SioPacket> parse_sio(std::string_view text, const SioLimits& limits = {});

// Event names socket.io keeps for itself; a client may not emit them.
bool is_reserved_event(std::string_view name);

}  // namespace p2p::signal
