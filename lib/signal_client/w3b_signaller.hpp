// signal_client/w3b_signaller: the media::Signaller for the w3bstreaming socket.io protocol
// (docs: shared/design/signalling.md). As broadcaster, each `watch` from the server is a new
// session; as watcher, the parent's offer opens the session. A watcher with relay slots is
// both: its parent offers to it, and the server sends it `watch(..., relay:true)` for children.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "keys/ed25519.hpp"
#include "media/signaller.hpp"
#include "signal_client/client.hpp"

namespace p2p::signal_client {

enum class W3bRole { broadcaster, watcher };

struct W3bOptions {
  ClientOptions client;
  W3bRole role = W3bRole::watcher;
  keys::Keypair key;
  std::string stream_id;
  // Relay trees. Watcher: children it can serve (0 = a leaf). Broadcaster: most watchers it
  // serves directly, sent as broadcast(..., relay:{slots}) (0 = no limit but the server's).
  std::uint32_t relay_slots = 0;
  // Watcher: while the stream has not started, retry every watch_retry_ms and tell notice()
  // once; false makes "hasn't started yet" a fatal error().
  bool wait_for_start = true;
  std::int64_t watch_retry_ms = 2000;
};

// How a server `error {message}` is taken; exposed for tests.
enum class ErrorKind {
  not_started,  // the stream is not live yet (watchers wait unless told not to)
  no_slot,      // queued for a relay slot: the server places us when one frees
  retry,        // busy or the chain was unreadable: join again shortly
  transient,    // rate limits and nonce trouble: nothing to do
  refusal,      // the server will not let us in: fatal
};
ErrorKind classify_error(const std::string& message);

// sdpMid of each m-line of an SDP, in order ("" where an m-line has none).
std::vector<std::string> sdp_mids(const std::string& sdp);

class W3bSignaller : public media::Signaller {
 public:
  explicit W3bSignaller(W3bOptions options, GMainContext* context = nullptr);
  ~W3bSignaller() override;

  void set_events(media::SignallerEvents events) override;
  void start() override;
  void stop() override;
  void send_sdp(const std::string& session, const media::Sdp& sdp) override;
  void add_ice(const std::string& session, const std::string& candidate, unsigned mline) override;
  void end_session(const std::string& session) override;
  void report_failed(const std::string& session) override;

  // The CLI's view of what the media object is told: notice, placement and error (the other
  // fields are ignored). Called after the media object's own callbacks.
  void set_observer(media::SignallerEvents events) { observer_ = std::move(events); }
  // Why signalling failed for good, once error() was called.
  enum class Failure { none, refused, unreachable };
  Failure failure() const { return failure_; }

  const std::string& id() const { return id_; }  // our account id, 0x hex
  Client& client() { return *client_; }
  // Watchers: who serves us now (from `placement`, or the first offer on servers without
  // relay trees), empty before that.
  const std::string& parent() const { return parent_; }
  unsigned depth() const { return depth_; }

 private:
  enum class Side { serve, receive };  // we offer to the peer / the peer offers to us
  struct Session {
    Side side = Side::serve;
    std::vector<std::string> local_mids;   // from the SDP we sent: sdpMid for our candidates
    std::vector<std::string> remote_mids;  // from the SDP we got: mline for mid-only candidates
  };
  void join();
  void wire();
  void on_server_error(const std::string& message);
  void ended(const std::string& session);
  void end_all();
  void retry_join_later();
  void notice(const std::string& message);
  void fail(const std::string& message, Failure kind);

  W3bOptions opts_;
  std::string id_;
  std::unique_ptr<Client> client_;
  media::SignallerEvents ev_;
  media::SignallerEvents observer_;
  Failure failure_ = Failure::none;
  std::map<std::string, Session> sessions_;
  std::string parent_;
  unsigned depth_ = 0;
  bool placed_ = false;        // the server speaks relay trees: only parent_ may offer
  bool running_ = false;
  bool ever_connected_ = false;
  bool not_started_told_ = false;
  GSource* retry_ = nullptr;
  GMainContext* ctx_;
};

}  // namespace p2p::signal_client
