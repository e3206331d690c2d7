// media/loopback_signaller: the hub's routing (sessions to endpoints) and its ordered delivery.
#include "media/loopback_signaller.hpp"

#include <deque>
#include <functional>
#include <map>
#include <optional>

#include "media/gst_util.hpp"

namespace p2p::media {

struct LoopbackHub::Core : std::enable_shared_from_this<LoopbackHub::Core> {
  GMainContext* ctx = nullptr;
  int next_id = 1;
  int next_session = 1;
  std::optional<int> broadcaster;             // endpoint id, once started
  std::map<int, SignallerEvents*> endpoints;  // id -> its events (owned by the endpoint)
  std::map<std::string, int> sessions;        // session -> watcher endpoint id
  std::map<std::string, std::string> peers;   // session -> watcher's peer name
  std::deque<std::function<void()>> queue;
  bool draining_scheduled = false;
  std::uint64_t delivered = 0;

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

  void request_session(const std::string& session) {
    if (!broadcaster) return;
    std::string peer = peers[session];
    deliver(*broadcaster, [session, peer](SignallerEvents& e) {
      if (e.session_requested) e.session_requested(session, peer);
    });
  }

  // The other end of `session` as seen from endpoint `from`.
  std::optional<int> other_end(int from, const std::string& session) const {
    auto it = sessions.find(session);
    if (it == sessions.end()) return std::nullopt;
    if (from == it->second) return broadcaster;
    if (broadcaster && from == *broadcaster) return it->second;
    return std::nullopt;
  }

  void end(int from, const std::string& session) {
    auto target = other_end(from, session);
    sessions.erase(session);
    peers.erase(session);
    if (!target) return;
    deliver(*target, [session](SignallerEvents& e) {
      if (e.session_ended) e.session_ended(session);
    });
  }
};

namespace {

using Core = LoopbackHub::Core;

class Endpoint : public Signaller {
 public:
  Endpoint(std::shared_ptr<Core> core, bool is_broadcaster, std::string peer)
      : core_(std::move(core)), id_(core_->next_id++), is_broadcaster_(is_broadcaster),
        peer_(std::move(peer)) {
    core_->endpoints[id_] = &events_;
  }
  ~Endpoint() override {
    stop();
    core_->endpoints.erase(id_);
  }

  void set_events(SignallerEvents events) override { events_ = std::move(events); }

  void start() override {
    if (started_) return;
    started_ = true;
    if (is_broadcaster_) {
      core_->broadcaster = id_;
      for (const auto& [session, owner] : core_->sessions) core_->request_session(session);
    } else {
      session_ = "session-" + std::to_string(core_->next_session++);
      core_->sessions[session_] = id_;
      core_->peers[session_] = peer_;
      core_->request_session(session_);
    }
  }

  void stop() override {
    if (!started_) return;
    started_ = false;
    if (is_broadcaster_) {
      std::map<std::string, int> all = core_->sessions;
      for (const auto& [session, owner] : all) core_->end(id_, session);
      core_->broadcaster.reset();
    } else if (core_->sessions.count(session_) != 0) {
      core_->end(id_, session_);
    }
  }

  void send_sdp(const std::string& session, const Sdp& sdp) override {
    if (auto target = core_->other_end(id_, session)) {
      core_->deliver(*target, [session, sdp](SignallerEvents& e) {
        if (e.remote_sdp) e.remote_sdp(session, sdp);
      });
    }
  }

  void add_ice(const std::string& session, const std::string& candidate, unsigned mline) override {
    if (auto target = core_->other_end(id_, session)) {
      core_->deliver(*target, [session, candidate, mline](SignallerEvents& e) {
        if (e.remote_ice) e.remote_ice(session, candidate, mline);
      });
    }
  }

  void end_session(const std::string& session) override {
    if (core_->other_end(id_, session)) core_->end(id_, session);
  }

 private:
  std::shared_ptr<Core> core_;
  int id_;
  bool is_broadcaster_;
  std::string peer_;
  std::string session_;
  bool started_ = false;
  SignallerEvents events_;
};

}  // namespace

LoopbackHub::LoopbackHub(GMainContext* ctx) : core_(std::make_shared<Core>()) {
  core_->ctx = ctx != nullptr ? ctx : g_main_context_default();
}

LoopbackHub::~LoopbackHub() = default;

std::unique_ptr<Signaller> LoopbackHub::broadcaster() {
  return std::make_unique<Endpoint>(core_, true, "broadcaster");
}

std::unique_ptr<Signaller> LoopbackHub::watcher(const std::string& peer) {
  return std::make_unique<Endpoint>(core_, false, peer);
}

std::uint64_t LoopbackHub::messages_delivered() const { return core_->delivered; }

std::size_t LoopbackHub::open_sessions() const { return core_->sessions.size(); }

}  // namespace p2p::media
