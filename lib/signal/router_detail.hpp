// signal/router_detail: what router.cpp (sockets, messages, admission) and router_streams.cpp
// (streams, the relay tree, forwarding, chain answers, queries) share. Private to the router.
#pragma once
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "signal/router.hpp"

namespace p2p::signal {

// Collects the actions of one input and counts refusals as they are sent.
class Router::Out {
 public:
  explicit Out(Counters& counters) : counters_(counters) {}
  void send(SocketId s, std::string packet) { actions.push_back(SendAction{s, std::move(packet)}); }
  void refuse(SocketId s, Refusal why, std::string_view message) {
    ++counters_.refusals[static_cast<std::size_t>(why)];
    send(s, error_event(message));
  }
  Actions actions;

 private:
  Counters& counters_;
};

namespace router_detail {

inline void erase_one(std::vector<std::string>& list, std::string_view value) {
  auto it = std::find(list.begin(), list.end(), value);
  if (it != list.end()) list.erase(it);
}

// The text clients match on (the w3b signaller treats it as a notice and keeps waiting).
inline constexpr std::string_view kNoSlot = "No relay slot free";

}  // namespace router_detail

}  // namespace p2p::signal
