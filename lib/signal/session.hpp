// signal/session: one Engine.IO v4 session as a pure state machine: the sid, the server's
// ping/pong clock, polling vs websocket, and the polling -> websocket upgrade (2probe/3probe/5).
// It knows nothing of Socket.IO or w3bstreaming: message payloads are handed up as text.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "signal/engineio.hpp"

namespace p2p::signal {

enum class Transport : std::uint8_t { polling, websocket };

struct SessionConfig {
  std::int64_t ping_interval_ms = 25000;
  std::int64_t ping_timeout_ms = 20000;
  std::size_t max_payload = kDefaultMaxPayload;
};

struct SessionOutput {
  // Encoded Engine.IO packets and the transport each must leave on. Polling ones wait for the
  // next GET (join them with join_payload); websocket ones are one frame each.
  std::vector<std::pair<Transport, std::string>> send;
  std::vector<std::string> messages;  // payloads of message ("4") packets, i.e. Socket.IO text
  bool closed = false;                // the session is over; the transport should be closed
  std::string reason;                 // why, when closed
};

class Session {
 public:
  Session(std::string sid, Transport transport, std::int64_t now_ms, SessionConfig config = {});

  const std::string& sid() const { return sid_; }
  Transport transport() const { return transport_; }
  bool upgrading() const { return upgrading_; }
  bool closed() const { return closed_; }

  // The "0{...}" packet the server sends first.
  std::string open_packet() const;

  // One websocket text frame (via websocket) or one packet from a polling body.
  SessionOutput on_frame(Transport via, std::string_view frame, std::int64_t now_ms);
  // A whole polling POST body (packets joined with \x1e).
  SessionOutput on_poll_body(std::string_view body, std::int64_t now_ms);
  // Sends the next ping when due and ends the session when the pong is late.
  SessionOutput on_tick(std::int64_t now_ms);
  // The earliest time on_tick has something to do.
  std::int64_t next_deadline() const;

 private:
  void handle(Transport via, const EioPacket& p, std::int64_t now_ms, SessionOutput& out);
  void close(SessionOutput& out, std::string reason);

  std::string sid_;
  Transport transport_;
  SessionConfig config_;
  bool upgrading_ = false;
  bool closed_ = false;
  bool awaiting_pong_ = false;
  std::int64_t next_ping_at_;
  std::int64_t pong_deadline_ = 0;
};

// A session id: 15 random bytes as 20 characters of base64url, like engine.io's own ids.
std::string make_sid(const std::function<void(std::span<std::uint8_t>)>& random);

}  // namespace p2p::signal
