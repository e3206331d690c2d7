// signal/relay_scan: an allocation-free reader for the three relay events (offer, answer,
// candidate) that make up most signalling traffic, so the router can forward them without
// building a JSON tree. It accepts only a plain subset of what parse_sio + parse_client_event
// accept: the root namespace, no ack id, exactly three arguments, ASCII text, no \u escapes,
// no duplicate keys where it looks. Anything else (including every malformed packet) gives
// nullopt, and the full parser then decides, with its own error messages. Pure.
#pragma once
#include <optional>
#include <string_view>

#include "signal/protocol.hpp"

namespace p2p::signal {

struct RelayScan {
  enum class Kind { offer, answer, candidate } kind = Kind::offer;
  std::string_view first;      // argument 1 (broadcasterId, or the candidate's targetId), unquoted
  std::string_view payload;    // argument 2, the raw JSON object text
  std::string_view stream_id;  // payload.streamId, unquoted
  std::string_view user_id;    // payload.userId, unquoted
  std::string_view candidate;  // candidate only: the raw JSON text of payload.candidate
};

// `sio_text` is the Socket.IO packet (what follows the Engine.IO "4").
std::optional<RelayScan> scan_relay(std::string_view sio_text, const ProtocolLimits& limits,
                                    int max_depth = kDefaultMaxJsonDepth);

}  // namespace p2p::signal
