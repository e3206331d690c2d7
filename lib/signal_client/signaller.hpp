// signal_client/signaller: the only face of signalling that media code (lib/media) sees, in the
// spirit of gst-plugins-rs's Signallable. One session is one peer connection; its id is the
// peer's account id. The w3bstreaming socket.io client implements it (w3b_signaller.hpp); a
// WHIP/WHEP one could later, with no change to the pipelines.
#pragma once
#include <functional>
#include <optional>
#include <string>

namespace p2p::signal_client {

enum class SdpType { offer, answer };

class Signaller {
 public:
  struct Callbacks {
    // A peer wants media from us: make an offer for `session` (broadcaster, or relaying watcher).
    std::function<void(const std::string& session, const std::string& peer)> session_requested;
    // The peer's offer (we watch) or answer (we serve).
    std::function<void(const std::string& session, SdpType type, const std::string& sdp)> remote_sdp;
    // One remote ICE candidate; mid is empty when the peer gave none.
    std::function<void(const std::string& session, const std::string& candidate, unsigned mline,
                        const std::optional<std::string>& mid)>
        remote_ice;
    // The peer left, the stream ended, or the connection to the server dropped.
    std::function<void(const std::string& session)> session_ended;
    // Refusals (error {message}) and connection trouble; signalling keeps trying where it can.
    std::function<void(const std::string& message)> error;
  };

  virtual ~Signaller() = default;
  // Set before start(); callbacks run on the signaller's GMainContext.
  virtual void set_callbacks(Callbacks callbacks) = 0;
  virtual void start() = 0;
  virtual void stop() = 0;
  virtual void send_sdp(const std::string& session, SdpType type, const std::string& sdp) = 0;
  virtual void add_ice(const std::string& session, const std::string& candidate, unsigned mline,
                       const std::optional<std::string>& mid = std::nullopt) = 0;
  virtual void end_session(const std::string& session) = 0;
};

}  // namespace p2p::signal_client
