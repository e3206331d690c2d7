// media/loopback_signaller: the hub's tree (placement, healing), its session routing and its
// ordered delivery.
#include "media/loopback_signaller.hpp"

#include <algorithm>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "media/gst_util.hpp"

namespace p2p::media {

namespace {
constexpr const char* kBroadcaster = "broadcaster";
}  // namespace

struct LoopbackHub::Core : std::enable_shared_from_this<LoopbackHub::Core> {
  struct Node {
    int endpoint = 0;
    bool broadcaster = false;
    unsigned slots = 0;  // children it serves; the broadcaster's come from max_direct
    std::uint64_t joined = 0;
    std::string parent;      // "" = not placed (the broadcaster never is)
    unsigned depth = 0;      // 1 = served by the broadcaster
    std::string in_session;  // the session with its parent
  };
  struct Session {
    std::string parent, child;
    int parent_ep = 0, child_ep = 0;
  };

  GMainContext* ctx = nullptr;
  int next_id = 1;
  int next_session = 1;
  std::uint64_t joins = 0;
  unsigned max_direct = 0;
  std::map<int, SignallerEvents*> endpoints;  // id -> its events (owned by the endpoint)
  std::map<std::string, Node> nodes;          // started members by name
  std::map<std::string, Session> sessions;
  std::vector<std::string> waiting;  // watchers no slot fitted, in join order
  std::map<std::string, std::uint64_t> offers;
  std::deque<std::function<void()>> queue;
  bool draining_scheduled = false;
  std::uint64_t delivered = 0;

  // ---- delivery ----

  // Queues fn(events of `target`) to run on the main loop, if `target` still exists then.
  void deliver(int target, std::function<void(SignallerEvents&)> fn) {
    std::weak_ptr<Core> weak = weak_from_this();
    queue.push_back([weak, target, fn = std::move(fn)] {
      auto core = weak.lock();
      if (!core) return;
      auto it = core->endpoints.find(target);
      if (it == core->endpoints.end()) return;
      ++core->delivered;
      // A copy: the callback may destroy the endpoint that owns these events.
      SignallerEvents events = *it->second;
      fn(events);
    });
    schedule();
  }

  void schedule() {
    if (draining_scheduled) return;
    draining_scheduled = true;
    std::weak_ptr<Core> weak = weak_from_this();
    post(ctx, [weak] {
      if (auto core = weak.lock()) core->drain();
    });
  }

  // One message per turn of the loop, so media code runs in between like with a real server.
  void drain() {
    draining_scheduled = false;
    if (queue.empty()) return;
    auto fn = std::move(queue.front());
    queue.pop_front();
    if (!queue.empty()) schedule();
    fn();
  }

  void tell_ended(int target, const std::string& session) {
    deliver(target, [session](SignallerEvents& e) {
      if (e.session_ended) e.session_ended(session);
    });
  }

  // ---- the tree ----

  Node* find(const std::string& name) {
    auto it = nodes.find(name);
    return it == nodes.end() ? nullptr : &it->second;
  }

  unsigned children_of(const std::string& name) const {
    unsigned n = 0;
    for (const auto& [s, sess] : sessions) n += sess.parent == name ? 1 : 0;
    return n;
  }

  bool has_free_slot(const std::string& name, const Node& n) const {
    unsigned cap = n.broadcaster ? (max_direct == 0 ? std::numeric_limits<unsigned>::max() : max_direct) : n.slots;
    return children_of(name) < cap;
  }

  // True when `name` is `root` or below it.
  bool in_subtree(const std::string& root, const std::string& name) {
    std::set<std::string> seen;
    for (std::string at = name; !at.empty() && seen.insert(at).second;) {
      if (at == root) return true;
      Node* n = find(at);
      if (n == nullptr) return false;
      at = n->parent;
    }
    return false;
  }

  bool placed(const Node& n) const { return n.broadcaster || !n.parent.empty(); }

  std::optional<std::string> choose_parent(const std::string& child, const std::string& excluded) {
    std::optional<std::string> best;
    const Node* best_node = nullptr;
    for (const auto& [name, n] : nodes) {
      if (name == excluded || !placed(n) || !has_free_slot(name, n) || in_subtree(child, name)) continue;
      if (best_node == nullptr || n.depth < best_node->depth ||
          (n.depth == best_node->depth && n.joined < best_node->joined)) {
        best = name;
        best_node = &n;
      }
    }
    return best;
  }

  // Puts `child` under `parent` on a new session: placement first, then the end of its old
  // session, then the parent's request (it offers).
  void attach(const std::string& child, const std::string& parent) {
    Node& c = nodes.at(child);
    Node& p = nodes.at(parent);
    std::string session = "session-" + std::to_string(next_session++);
    sessions[session] = Session{parent, child, p.endpoint, c.endpoint};
    std::string old = c.in_session;
    c.parent = parent;
    c.depth = p.depth + 1;
    c.in_session = session;
    unsigned depth = c.depth;
    deliver(c.endpoint, [parent, depth](SignallerEvents& e) {
      if (e.placement) e.placement(parent, depth);
    });
    if (!old.empty()) tell_ended(c.endpoint, old);
    deliver(p.endpoint, [session, child](SignallerEvents& e) {
      if (e.session_requested) e.session_requested(session, child);
    });
  }

  // Places a watcher, or queues it with a notice when no slot fits.
  void place(const std::string& child, const std::string& excluded = {}) {
    Node* c = find(child);
    if (c == nullptr) return;
    if (!find(kBroadcaster)) {
      wait(child, false);  // nothing to watch yet
      return;
    }
    auto parent = choose_parent(child, excluded);
    if (!parent) {
      wait(child, true);
      return;
    }
    attach(child, *parent);
  }

  void wait(const std::string& child, bool notice) {
    if (std::find(waiting.begin(), waiting.end(), child) == waiting.end()) waiting.push_back(child);
    if (!notice) return;
    deliver(nodes.at(child).endpoint, [](SignallerEvents& e) {
      if (e.notice) e.notice("No relay slot free");
    });
  }

  void place_waiting() {
    auto all = std::move(waiting);
    waiting.clear();
    for (const auto& name : all) {
      Node* n = find(name);
      if (n != nullptr && !placed(*n)) place(name);
    }
  }

  // `name` loses its parent session (it left, or its parent went away).
  void detach_from_parent(const std::string& name, bool tell_parent) {
    Node* n = find(name);
    if (n == nullptr || n->in_session.empty()) return;
    auto it = sessions.find(n->in_session);
    if (it != sessions.end()) {
      if (tell_parent) tell_ended(it->second.parent_ep, it->first);
      sessions.erase(it);
    }
    n->parent.clear();
  }

  // A member leaves the tree: its parent is told, its children are re-placed elsewhere (each
  // keeps its own subtree), and waiting watchers may take the freed slots.
  void leave(const std::string& name) {
    Node* n = find(name);
    if (n == nullptr) return;
    detach_from_parent(name, true);
    n->in_session.clear();
    waiting.erase(std::remove(waiting.begin(), waiting.end(), name), waiting.end());
    if (n->broadcaster) {
      // The stream is over: everyone's session ends; they may wait for a next broadcaster.
      for (const auto& [s, sess] : sessions) tell_ended(sess.child_ep, s);
      for (const auto& [s, sess] : sessions) {
        if (sess.parent != kBroadcaster) tell_ended(sess.parent_ep, s);
      }
      sessions.clear();
      nodes.erase(name);
      for (auto& [other, node] : nodes) {
        node.parent.clear();
        node.in_session.clear();
        waiting.push_back(other);
      }
      return;
    }
    std::vector<std::string> orphans;
    for (const auto& [s, sess] : sessions) {
      if (sess.parent == name) orphans.push_back(sess.child);
    }
    for (const auto& o : orphans) {
      Node& on = nodes.at(o);
      sessions.erase(on.in_session);  // its old session ends when the new placement comes
      on.parent.clear();
      place(o, name);
    }
    nodes.erase(name);
    place_waiting();
  }

  std::optional<int> other_end(int from, const std::string& session) const {
    auto it = sessions.find(session);
    if (it == sessions.end()) return std::nullopt;
    if (from == it->second.parent_ep) return it->second.child_ep;
    if (from == it->second.child_ep) return it->second.parent_ep;
    return std::nullopt;
  }

  std::string name_of(int endpoint) const {
    for (const auto& [name, n] : nodes) {
      if (n.endpoint == endpoint) return name;
    }
    return {};
  }

  // `from` ends `session`: as the child it leaves the stream; as the parent it drops the child.
  void end(int from, const std::string& session) {
    auto it = sessions.find(session);
    if (it == sessions.end()) return;
    Session sess = it->second;
    if (from == sess.child_ep) {
      leave(sess.child);
      return;
    }
    if (from != sess.parent_ep) return;
    sessions.erase(it);
    if (Node* c = find(sess.child)) {
      c->parent.clear();
      c->in_session.clear();
    }
    tell_ended(sess.child_ep, session);
    place_waiting();
  }

  // The child's connection to its parent failed: re-place it elsewhere, tell the parent.
  void failed(int from, const std::string& session) {
    auto it = sessions.find(session);
    if (it == sessions.end()) return;
    Session sess = it->second;
    if (from != sess.child_ep) {
      end(from, session);
      return;
    }
    sessions.erase(it);
    tell_ended(sess.parent_ep, session);
    Node& c = nodes.at(sess.child);
    c.parent.clear();
    c.in_session.clear();  // the child forgot it already
    place(sess.child, sess.parent);
    place_waiting();
  }
};

namespace {

using Core = LoopbackHub::Core;

class Endpoint : public Signaller {
 public:
  Endpoint(std::shared_ptr<Core> core, bool is_broadcaster, std::string name, unsigned slots)
      : core_(std::move(core)), id_(core_->next_id++), is_broadcaster_(is_broadcaster),
        name_(std::move(name)), slots_(slots) {
    core_->endpoints[id_] = &events_;
  }
  ~Endpoint() override {
    stop();
    core_->endpoints.erase(id_);
  }

  void set_events(SignallerEvents events) override { events_ = std::move(events); }

  void start() override {
    if (started_ || core_->nodes.count(name_) != 0) return;
    started_ = true;
    Core::Node n;
    n.endpoint = id_;
    n.broadcaster = is_broadcaster_;
    n.slots = slots_;
    n.joined = core_->joins++;
    core_->nodes[name_] = n;
    if (is_broadcaster_) {
      core_->place_waiting();
    } else {
      core_->place(name_);
    }
  }

  void stop() override {
    if (!started_) return;
    started_ = false;
    core_->leave(name_);
  }

  void send_sdp(const std::string& session, const Sdp& sdp) override {
    auto target = core_->other_end(id_, session);
    if (!target) return;
    if (sdp.type == SdpType::offer) ++core_->offers[core_->name_of(*target)];
    core_->deliver(*target, [session, sdp](SignallerEvents& e) {
      if (e.remote_sdp) e.remote_sdp(session, sdp);
    });
  }

  void add_ice(const std::string& session, const std::string& candidate, unsigned mline) override {
    if (auto target = core_->other_end(id_, session)) {
      core_->deliver(*target, [session, candidate, mline](SignallerEvents& e) {
        if (e.remote_ice) e.remote_ice(session, candidate, mline);
      });
    }
  }

  void end_session(const std::string& session) override { core_->end(id_, session); }
  void report_failed(const std::string& session) override { core_->failed(id_, session); }

 private:
  std::shared_ptr<Core> core_;
  int id_;
  bool is_broadcaster_;
  std::string name_;
  unsigned slots_;
  bool started_ = false;
  SignallerEvents events_;
};

}  // namespace

LoopbackHub::LoopbackHub(GMainContext* ctx) : core_(std::make_shared<Core>()) {
  core_->ctx = ctx != nullptr ? ctx : g_main_context_default();
}

LoopbackHub::~LoopbackHub() = default;

std::unique_ptr<Signaller> LoopbackHub::broadcaster() {
  return std::make_unique<Endpoint>(core_, true, kBroadcaster, 0);
}

std::unique_ptr<Signaller> LoopbackHub::watcher(const std::string& peer, unsigned relay_slots) {
  return std::make_unique<Endpoint>(core_, false, peer, relay_slots);
}

void LoopbackHub::set_max_direct(unsigned n) {
  core_->max_direct = n;
  core_->place_waiting();
}

bool LoopbackHub::reparent(const std::string& peer, const std::string& new_parent) {
  std::string parent = new_parent.empty() ? kBroadcaster : new_parent;
  Core::Node* n = core_->find(peer);
  Core::Node* p = core_->find(parent);
  if (n == nullptr || p == nullptr || n->broadcaster || n->parent == parent || !core_->placed(*p) ||
      core_->in_subtree(peer, parent) || !core_->has_free_slot(parent, *p)) {
    return false;
  }
  core_->detach_from_parent(peer, true);  // the old parent stops serving it
  core_->attach(peer, parent);
  return true;
}

std::string LoopbackHub::parent_of(const std::string& peer) const {
  auto it = core_->nodes.find(peer);
  return it == core_->nodes.end() ? std::string() : it->second.parent;
}

unsigned LoopbackHub::depth_of(const std::string& peer) const {
  auto it = core_->nodes.find(peer);
  return it == core_->nodes.end() ? 0 : it->second.depth;
}

std::uint64_t LoopbackHub::offers_to(const std::string& peer) const {
  auto it = core_->offers.find(peer);
  return it == core_->offers.end() ? 0 : it->second;
}

std::uint64_t LoopbackHub::messages_delivered() const { return core_->delivered; }

std::size_t LoopbackHub::open_sessions() const { return core_->sessions.size(); }

}  // namespace p2p::media
