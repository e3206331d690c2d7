// signal_server/rawws: server-side WebSocket framing (RFC 6455) on plain TCP sockets that libsoup
// hands over after its handshake, all driven by ONE epoll GSource on the GLib main loop.
// Why: a SoupWebsocketConnection costs a GSource per socket and re-creates it on every read,
// and the GLib loop polls and checks every source on every iteration, so cost per message grows
// with the number of sockets. Here it does not. TLS sockets stay on libsoup's own WebSocket.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <gio/gio.h>

namespace p2p::signal_server {

// ---- frames (pure) ----

enum class WsOp : std::uint8_t { continuation = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10 };

struct WsFrame {
  enum Status { ok, incomplete, bad } status = incomplete;
  std::size_t consumed = 0;  // bytes of the frame, header included (ok only)
  bool fin = false;
  std::uint8_t opcode = 0;
  std::size_t payload_at = 0;  // payload offset in the buffer, unmasked in place (ok only)
  std::size_t payload_len = 0;
  std::uint16_t close_code = 0;  // what to close with (bad only)
  std::string error;
};

// Parses the client frame at the start of buf and unmasks its payload in place. Client frames
// must be masked; control frames must be final and at most 125 bytes; payloads over max_payload
// are refused (1009) before any of them is buffered.
WsFrame parse_client_frame(char* buf, std::size_t len, std::size_t max_payload);

// Appends one unmasked server frame.
void append_server_frame(std::string& out, WsOp op, std::string_view payload);

// ---- sockets ----

class RawSockets {
 public:
  using LinkId = std::uint64_t;
  struct Events {
    // One whole text message; `owner` is what adopt() was given, so the hot path needs no lookup.
    std::function<void(LinkId, std::uint64_t owner, std::string_view text)> text;
    std::function<void(LinkId, const std::string& why)> closed;  // the peer or the network ended it
  };

  // read_budget: the most bytes taken from one socket per turn, so one busy client cannot
  // starve the others (tests make it small to reach the path that comes back for the rest).
  RawSockets(GMainContext* context, Events events, std::size_t max_payload, std::size_t read_budget = 256 << 10);
  ~RawSockets();
  RawSockets(const RawSockets&) = delete;
  RawSockets& operator=(const RawSockets&) = delete;

  // Takes over fd, which belongs to stream (kept referenced until the link is gone); owner is
  // handed back with each text message.
  LinkId adopt(GIOStream* stream, int fd, std::uint64_t owner = 0);
  // Queues a text frame; written at once, or at the end of the current batch of events.
  // Returns the link's backlog (as backlog()) after queueing; 0 for a link that is gone.
  std::size_t send_text(LinkId link, std::string_view payload);
  // Sends a close frame after what is queued and forgets the link (no `closed` event).
  // discard drops what is queued instead (a client that does not read).
  void close(LinkId link, std::uint16_t code, std::string_view reason, bool discard = false);
  bool has(LinkId link) const { return links_.count(link) != 0; }
  std::size_t backlog(LinkId link) const;  // bytes queued and not yet taken by the kernel
  std::size_t size() const { return links_.size(); }

  struct Link;

 private:
  static gboolean on_ready(gint fd, GIOCondition condition, gpointer self);
  void dispatch();
  int dispatch_batch();  // one epoll_wait's worth of events; returns how many
  static constexpr int kBatch = 256;
  // Reads what is waiting (edge-triggered: until the kernel has no more, or a cap, after which
  // the link waits in unread_ for the next round).
  void read(LinkId id);
  int read_unread();  // takes the links left in unread_; returns how many
  bool flush(Link& l);  // false: the link failed and is gone
  void flush_dirty();
  void want_output(Link& l, bool on);
  void finish_close(Link& l);
  void fail(LinkId id, const std::string& why);
  void drop(LinkId id);
  void reap(std::int64_t now_ms);

  Events events_;
  std::size_t max_payload_;
  std::size_t read_budget_;
  int epfd_ = -1;
  GSource* source_ = nullptr;
  GSource* reaper_ = nullptr;
  LinkId next_ = 1;
  std::unordered_map<LinkId, std::unique_ptr<Link>> links_;
  std::unordered_map<LinkId, std::unique_ptr<Link>> closing_;  // flushing a close frame
  std::vector<LinkId> dirty_;
  std::vector<LinkId> flushing_;  // dirty_'s previous batch, kept for its capacity
  std::vector<LinkId> unread_;    // links with data left in the kernel after a capped read
  std::vector<LinkId> reading_;
  bool batching_ = false;
};

}  // namespace p2p::signal_server
