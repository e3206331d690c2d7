// signal_client/w3b_signaller: the Signaller for the w3bstreaming socket.io protocol
// (docs: shared/design/signalling.md). As broadcaster, each `watch` from the server is a new
// session; as watcher, the parent's offer opens the session. A watcher with relay slots is
// both: its parent offers to it, and the server sends it `watch(..., relay:true)` for children.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "keys/ed25519.hpp"
#include "signal_client/client.hpp"
#include "signal_client/signaller.hpp"

namespace p2p::signal_client {

enum class W3bRole { broadcaster, watcher };

struct W3bOptions {
  ClientOptions client;
  W3bRole role = W3bRole::watcher;
  keys::Keypair key;
  std::string stream_id;
  std::uint32_t relay_slots = 0;        // watcher: children it can serve (0 = leaf)
  std::int64_t watch_retry_ms = 2000;   // watcher: retry while the stream has not started
};

class W3bSignaller : public Signaller {
 public:
  explicit W3bSignaller(W3bOptions options, GMainContext* context = nullptr);
  ~W3bSignaller() override;

  void set_callbacks(Callbacks callbacks) override;
  void start() override;
  void stop() override;
  void send_sdp(const std::string& session, SdpType type, const std::string& sdp) override;
  void add_ice(const std::string& session, const std::string& candidate, unsigned mline,
               const std::optional<std::string>& mid = std::nullopt) override;
  void end_session(const std::string& session) override;

  const std::string& id() const { return id_; }  // our account id, 0x hex
  Client& client() { return *client_; }
  // Watchers: who serves us now (from `placement`), empty before placement.
  const std::string& parent() const { return parent_; }

 private:
  enum class Side { serve, receive };  // we offer to the peer / the peer offers to us
  void join();
  void wire();
  void ended(const std::string& session);
  void end_all();
  void retry_watch_later();

  W3bOptions opts_;
  std::string id_;
  std::unique_ptr<Client> client_;
  Callbacks cb_;
  std::map<std::string, Side> sessions_;
  std::string parent_;
  bool running_ = false;
  bool not_started_reported_ = false;
  GSource* retry_ = nullptr;
  GMainContext* ctx_;
};

}  // namespace p2p::signal_client
