// media/loopback_signaller: an in-process Signaller hub that connects one broadcaster and any
// number of watchers in the same process, for tests and benchmarks. No sockets, no server. It
// places watchers in a relay tree the way `p2pstream signal` does, and heals it.
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
//
// Tree rules (shared/design/signalling.md): a started watcher goes under the shallowest member
// with a free slot, the broadcaster first (max_direct slots, 0 = no limit), then relaying
// watchers (their relay_slots), earliest joined first on a tie. The watcher gets
// placement(parent, depth), then its parent gets session_requested and offers. When a parent
// stops, each orphan gets a new placement, then session_ended for its old session, and its new
// parent offers on a new session; the orphan's own children are not told anything. A watcher
// that no slot fits gets the notice "No relay slot free" and waits until one frees.
class LoopbackHub {
 public:
  explicit LoopbackHub(GMainContext* ctx = nullptr);  // nullptr: the default main context
  ~LoopbackHub();
  LoopbackHub(const LoopbackHub&) = delete;
  LoopbackHub& operator=(const LoopbackHub&) = delete;

  // The broadcaster's side: session_requested fires for every watcher placed under it.
  std::unique_ptr<Signaller> broadcaster();
  // A watcher's side, named `peer` (unique); start() joins the tree. relay_slots > 0: it may be
  // asked to serve that many children.
  std::unique_ptr<Signaller> watcher(const std::string& peer, unsigned relay_slots = 0);

  // --max-direct: most watchers the broadcaster serves itself; 0 = no limit.
  void set_max_direct(unsigned n);
  // Moves `peer` and its subtree under `new_parent` ("" = the broadcaster) as the server does
  // when the old parent dies: the old parent's session ends, the peer gets a placement and the
  // new parent offers. False when that would make a loop or the parent has no free slot.
  bool reparent(const std::string& peer, const std::string& new_parent);

  std::string parent_of(const std::string& peer) const;  // "" before placement; "broadcaster"
  unsigned depth_of(const std::string& peer) const;       // 0 before placement
  std::uint64_t offers_to(const std::string& peer) const;  // SDP offers delivered to it
  std::uint64_t messages_delivered() const;
  std::size_t open_sessions() const;

  struct Core;

 private:
  std::shared_ptr<Core> core_;
};

}  // namespace p2p::media
