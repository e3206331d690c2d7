// signal/session: the Engine.IO session state machine (pings, upgrade, transport choice).
#include "signal/session.hpp"

#include <array>

namespace p2p::signal {

Session::Session(std::string sid, Transport transport, std::int64_t now_ms, SessionConfig config)
    : sid_(std::move(sid)),
      transport_(transport),
      config_(config),
      next_ping_at_(now_ms + config.ping_interval_ms) {}

std::string Session::open_packet() const {
  OpenInfo info;
  info.sid = sid_;
  if (transport_ == Transport::polling) info.upgrades = {"websocket"};
  info.ping_interval_ms = config_.ping_interval_ms;
  info.ping_timeout_ms = config_.ping_timeout_ms;
  info.max_payload = config_.max_payload;
  return encode_open(info);
}

void Session::close(SessionOutput& out, std::string reason) {
  closed_ = true;
  out.closed = true;
  out.reason = std::move(reason);
}

SessionOutput Session::on_frame(Transport via, std::string_view frame, std::int64_t now_ms) {
  SessionOutput out;
  if (closed_) return out;
  auto p = parse_eio(frame, config_.max_payload);
  if (!p) {
    close(out, "protocol error: " + p.error());
    return out;
  }
  handle(via, p.value(), now_ms, out);
  return out;
}

SessionOutput Session::on_poll_body(std::string_view body, std::int64_t now_ms) {
  SessionOutput out;
  if (closed_) return out;
  if (transport_ != Transport::polling) {
    close(out, "protocol error: polling data after the upgrade to websocket");
    return out;
  }
  auto packets = parse_payload(body, config_.max_payload);
  if (!packets) {
    close(out, "protocol error: " + packets.error());
    return out;
  }
  for (const auto& p : packets.value()) {
    handle(Transport::polling, p, now_ms, out);
    if (closed_) break;
  }
  return out;
}

void Session::handle(Transport via, const EioPacket& p, std::int64_t now_ms, SessionOutput& out) {
  // While a polling session probes websocket, the websocket may carry only the probe and "5".
  if (via == Transport::websocket && transport_ == Transport::polling) {
    if (p.type == EioType::ping && p.data == "probe") {
      upgrading_ = true;
      out.send.emplace_back(Transport::websocket, encode({EioType::pong, "probe"}));
      // Releases the client's pending GET so it can pause polling.
      out.send.emplace_back(Transport::polling, encode({EioType::noop, ""}));
      return;
    }
    if (p.type == EioType::upgrade && upgrading_) {
      upgrading_ = false;
      transport_ = Transport::websocket;
      return;
    }
    return close(out, "invalid upgrade: expected 2probe then 5 on the websocket");
  }
  if (via == Transport::polling && transport_ == Transport::websocket)
    return close(out, "protocol error: polling data after the upgrade to websocket");

  switch (p.type) {
    case EioType::message:
      out.messages.push_back(p.data);
      return;
    case EioType::pong:
      if (awaiting_pong_) {
        awaiting_pong_ = false;
        next_ping_at_ = now_ms + config_.ping_interval_ms;
      }
      return;
    case EioType::close:
      return close(out, "client closed the session");
    case EioType::noop:
    case EioType::ping:  // v4 clients do not ping; tolerated
      return;
    case EioType::open:
    case EioType::upgrade:
      break;
  }
  close(out, std::string("protocol error: unexpected Engine.IO packet '") + static_cast<char>(p.type) + "' from the client");
}

SessionOutput Session::on_tick(std::int64_t now_ms) {
  SessionOutput out;
  if (closed_) return out;
  if (awaiting_pong_) {
    if (now_ms >= pong_deadline_) close(out, "ping timeout");
    return out;
  }
  if (now_ms >= next_ping_at_) {
    awaiting_pong_ = true;
    pong_deadline_ = now_ms + config_.ping_timeout_ms;
    out.send.emplace_back(transport_, encode({EioType::ping, ""}));
  }
  return out;
}

std::int64_t Session::next_deadline() const { return awaiting_pong_ ? pong_deadline_ : next_ping_at_; }

std::string make_sid(const std::function<void(std::span<std::uint8_t>)>& random) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::array<std::uint8_t, 15> bytes{};
  random(bytes);
  std::string out;
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    unsigned v = static_cast<unsigned>(bytes[i]) << 16 | static_cast<unsigned>(bytes[i + 1]) << 8 | bytes[i + 2];
    for (int shift = 18; shift >= 0; shift -= 6) out += kAlphabet[(v >> shift) & 0x3f];
  }
  return out;
}

}  // namespace p2p::signal
