// media/signaller: the only way media pipelines reach peers (in the spirit of gst-plugins-rs'
// Signallable). The socket.io client, the in-process loopback and later WHIP/WHEP implement it.
#pragma once
#include <functional>
#include <string>

namespace p2p::media {

// An SDP blob and whether it is an offer or an answer (the socket.io protocol carries both).
enum class SdpType { offer, answer };

struct Sdp {
  SdpType type = SdpType::offer;
  std::string text;
};

inline const char* to_string(SdpType t) { return t == SdpType::offer ? "offer" : "answer"; }

// What a Signaller reports. Every callback runs on the thread of the GLib main context that
// drives the media object; implementations must never call them from another thread.
struct SignallerEvents {
  // A peer wants a session: for a broadcaster, a new watcher; the broadcaster then offers.
  std::function<void(const std::string& session, const std::string& peer)> session_requested;
  std::function<void(const std::string& session, const Sdp& sdp)> remote_sdp;
  // candidate is the "candidate:..." line of RFC 8839; mline is the m-line index.
  std::function<void(const std::string& session, const std::string& candidate, unsigned mline)>
      remote_ice;
  std::function<void(const std::string& session)> session_ended;
  // Signalling failed for good (refused, server unreachable after retries). The media object
  // stops what it was doing.
  std::function<void(const std::string& message)> error;
  // Relay trees: the server placed us (or re-placed us) under `parent` at `depth` (1 = fed by
  // the broadcaster). The old parent's session, if any, has ended or will end.
  std::function<void(const std::string& parent, unsigned depth)> placement;
  // Something worth telling the user that is not fatal, e.g. "No relay slot free" (we wait in
  // the server's queue) or "reconnecting to the signalling server".
  std::function<void(const std::string& message)> notice;
};

// Calls are made from the main context's thread only.
class Signaller {
 public:
  virtual ~Signaller() = default;

  // Set once, before start(), by the media object that owns this signaller.
  virtual void set_events(SignallerEvents events) = 0;
  virtual void start() = 0;
  virtual void stop() = 0;
  virtual void send_sdp(const std::string& session, const Sdp& sdp) = 0;
  virtual void add_ice(const std::string& session, const std::string& candidate, unsigned mline) = 0;
  // Our side ends the session; the peer gets session_ended.
  virtual void end_session(const std::string& session) = 0;
  // The peer connection of `session` failed (ICE/DTLS). A watcher reports its parent this way so
  // the server re-places it at once; the default just ends the session.
  virtual void report_failed(const std::string& session) { end_session(session); }
};

}  // namespace p2p::media
