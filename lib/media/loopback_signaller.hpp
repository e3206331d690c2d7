// media/loopback_signaller: an in-process Signaller hub that connects one broadcaster and any
// number of watchers in the same process, for tests and benchmarks. No sockets, no server.
#pragma once
#include <glib.h>

#include <cstdint>
#include <memory>
#include <string>

#include "media/signaller.hpp"

namespace p2p::media {

// Messages are delivered in order, asynchronously, on the hub's main context, like a server
// would. Endpoints may outlive or predate each other in any order; messages to a gone or
// unknown session are dropped.
class LoopbackHub {
 public:
  explicit LoopbackHub(GMainContext* ctx = nullptr);  // nullptr: the default main context
  ~LoopbackHub();
  LoopbackHub(const LoopbackHub&) = delete;
  LoopbackHub& operator=(const LoopbackHub&) = delete;

  // The broadcaster's side: session_requested fires for every watcher that has started.
  std::unique_ptr<Signaller> broadcaster();
  // A watcher's side: start() opens a session with the broadcaster named after `peer`.
  std::unique_ptr<Signaller> watcher(const std::string& peer);

  std::uint64_t messages_delivered() const;
  std::size_t open_sessions() const;

  struct Core;

 private:
  std::shared_ptr<Core> core_;
};

}  // namespace p2p::media
