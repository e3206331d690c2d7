// signal_server/rawws: WebSocket frames and the epoll reactor behind one GSource.
#include "signal_server/rawws.hpp"

#include <errno.h>
#include <glib-unix.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace p2p::signal_server {

// ---- frames ----

WsFrame parse_client_frame(char* buf, std::size_t len, std::size_t max_payload) {
  WsFrame f;
  auto fail = [&](std::uint16_t code, std::string why) {
    f.status = WsFrame::bad;
    f.close_code = code;
    f.error = std::move(why);
    return f;
  };
  if (len < 2) return f;
  const auto* p = reinterpret_cast<const unsigned char*>(buf);
  f.fin = (p[0] & 0x80) != 0;
  if (p[0] & 0x70) return fail(1002, "WebSocket frame with reserved bits set (no extension was agreed)");
  f.opcode = p[0] & 0x0f;
  const bool masked = (p[1] & 0x80) != 0;
  std::uint64_t n = p[1] & 0x7f;
  std::size_t at = 2;
  if (n == 126) {
    if (len < 4) return f;
    n = static_cast<std::uint64_t>(p[2]) << 8 | p[3];
    at = 4;
  } else if (n == 127) {
    if (len < 10) return f;
    n = 0;
    for (int i = 0; i < 8; ++i) n = n << 8 | p[2 + i];
    at = 10;
  }
  const bool control = f.opcode >= 8;
  if (f.opcode > 2 && f.opcode < 8) return fail(1002, "unknown WebSocket opcode " + std::to_string(f.opcode));
  if (f.opcode > 10) return fail(1002, "unknown WebSocket opcode " + std::to_string(f.opcode));
  if (control && (!f.fin || n > 125)) return fail(1002, "WebSocket control frames must be final and at most 125 bytes");
  if (!masked) return fail(1002, "WebSocket client frames must be masked");
  if (n > max_payload) return fail(1009, "WebSocket message of " + std::to_string(n) + " bytes exceeds the " +
                                             std::to_string(max_payload) + "-byte limit");
  if (len < at + 4 + n) return f;
  unsigned char mask[4];
  std::memcpy(mask, buf + at, 4);
  at += 4;
  char* payload = buf + at;
  // Eight bytes at a time: byte by byte, unmasking was ~4% of the relay path's CPU.
  std::uint64_t mask8 = 0;
  for (int k = 0; k < 8; ++k) reinterpret_cast<unsigned char*>(&mask8)[k] = mask[k & 3];
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t word;
    std::memcpy(&word, payload + i, 8);
    word ^= mask8;
    std::memcpy(payload + i, &word, 8);
  }
  for (; i < n; ++i) payload[i] = static_cast<char>(payload[i] ^ mask[i & 3]);
  f.status = WsFrame::ok;
  f.payload_at = at;
  f.payload_len = static_cast<std::size_t>(n);
  f.consumed = at + static_cast<std::size_t>(n);
  return f;
}

void append_server_frame(std::string& out, WsOp op, std::string_view payload) {
  const std::size_t n = payload.size();
  out += static_cast<char>(0x80 | static_cast<std::uint8_t>(op));
  if (n < 126) {
    out += static_cast<char>(n);
  } else if (n < 65536) {
    out += static_cast<char>(126);
    out += static_cast<char>(n >> 8);
    out += static_cast<char>(n & 0xff);
  } else {
    out += static_cast<char>(127);
    for (int s = 56; s >= 0; s -= 8) out += static_cast<char>((static_cast<std::uint64_t>(n) >> s) & 0xff);
  }
  out.append(payload);
}

// ---- sockets ----

struct RawSockets::Link {
  LinkId id = 0;
  int fd = -1;
  GIOStream* stream = nullptr;
  std::string in;
  std::string out;
  std::size_t out_at = 0;  // bytes of `out` already sent
  std::uint64_t owner = 0;
  std::string frag;        // a fragmented text message being put together
  bool in_frag = false;
  bool writing = false;  // EPOLLOUT is on
  bool dirty = false;    // in dirty_
  bool unread = false;   // in unread_
  std::int64_t closing_since = 0;
  bool fin_sent = false;  // closing: our side is shut down, waiting for the peer's
};

namespace {

std::int64_t monotonic_ms() { return g_get_monotonic_time() / 1000; }

constexpr int kFlushEvery = 32;     // events handled before queued replies are written
constexpr int kRoundsPerWake = 8;   // most epoll batches per GLib dispatch

std::string close_payload(std::uint16_t code, std::string_view reason) {
  std::string p;
  p += static_cast<char>(code >> 8);
  p += static_cast<char>(code & 0xff);
  p.append(reason.substr(0, 123));
  return p;
}

}  // namespace

RawSockets::RawSockets(GMainContext* context, Events events, std::size_t max_payload, std::size_t read_budget)
    : events_(std::move(events)), max_payload_(max_payload), read_budget_(std::max<std::size_t>(read_budget, 1)) {
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  source_ = g_unix_fd_source_new(epfd_, G_IO_IN);
  g_source_set_callback(source_, G_SOURCE_FUNC(&RawSockets::on_ready), this, nullptr);
  // GLib takes a source's fds out of the poll set while it dispatches and puts them back after,
  // and each change writes the context's wake-up eventfd: two writes, a read and a spare loop
  // iteration per wake-up. dispatch() never re-enters the loop, so the guard is not needed.
  g_source_set_can_recurse(source_, TRUE);
  g_source_attach(source_, context);
  reaper_ = g_timeout_source_new(500);
  g_source_set_callback(
      reaper_,
      [](gpointer self) -> gboolean {
        static_cast<RawSockets*>(self)->reap(monotonic_ms());
        return G_SOURCE_CONTINUE;
      },
      this, nullptr);
  g_source_attach(reaper_, context);
}

RawSockets::~RawSockets() {
  for (GSource* s : {source_, reaper_}) {
    g_source_destroy(s);
    g_source_unref(s);
  }
  std::vector<LinkId> all;
  for (const auto& [id, l] : links_) all.push_back(id);
  for (const auto& [id, l] : closing_) all.push_back(id);
  for (auto id : all) drop(id);
  ::close(epfd_);
}

gboolean RawSockets::on_ready(gint, GIOCondition, gpointer self) {
  static_cast<RawSockets*>(self)->dispatch();
  return G_SOURCE_CONTINUE;
}

// Edge-triggered: a level-triggered socket is polled again on the next epoll_wait after each
// event only to find it drained, one tcp_poll per message for nothing.
constexpr std::uint32_t kInputEvents = EPOLLIN | EPOLLET;

RawSockets::LinkId RawSockets::adopt(GIOStream* stream, int fd, std::uint64_t owner) {
  auto l = std::make_unique<Link>();
  l->id = next_++;
  l->fd = fd;
  l->owner = owner;
  l->stream = G_IO_STREAM(g_object_ref(stream));
  epoll_event ev{};
  ev.events = kInputEvents;
  ev.data.u64 = l->id;
  ::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
  LinkId id = l->id;
  links_.emplace(id, std::move(l));
  return id;
}

void RawSockets::dispatch() {
  batching_ = true;
  // Look again before going back to the GLib loop: what arrived while we were relaying is taken
  // now, for one cheap epoll_wait, instead of by another GLib iteration, sleep and wake-up, which
  // together cost about as much CPU as relaying a message. Bounded, so that timers and new HTTP
  // connections still get their turn.
  for (int round = 0; round < kRoundsPerWake; ++round)
    if (dispatch_batch() + read_unread() == 0) break;
  flush_dirty();
  batching_ = false;
  // Data left behind by a capped read raises no new edge: come back on the next iteration
  // (a ready time stays until it is changed, so it is unset again when nothing waits).
  g_source_set_ready_time(source_, unread_.empty() ? -1 : 0);
}

int RawSockets::read_unread() {
  if (unread_.empty()) return 0;
  reading_.clear();
  reading_.swap(unread_);
  for (auto id : reading_) {
    auto it = links_.find(id);
    if (it == links_.end()) continue;
    it->second->unread = false;
    read(id);
  }
  flush_dirty();
  return static_cast<int>(reading_.size());
}

int RawSockets::dispatch_batch() {
  epoll_event evs[kBatch];
  const int count = ::epoll_wait(epfd_, evs, kBatch, 0);
  for (int i = 0; i < count; ++i) {
    const LinkId id = evs[i].data.u64;
    if (auto c = closing_.find(id); c != closing_.end()) {
      Link& l = *c->second;
      if (evs[i].events & EPOLLERR) {
        drop(id);
        continue;
      }
      if ((evs[i].events & EPOLLOUT) && !flush(l)) continue;
      if (evs[i].events & (EPOLLIN | EPOLLHUP)) {
        // Read and ignore what the peer still sends: closing with unread data would reset the
        // connection and the peer could lose our last frames (the error and the close).
        char sink[16384];
        ssize_t n;
        while ((n = ::recv(l.fd, sink, sizeof sink, 0)) > 0 || (n < 0 && errno == EINTR)) {
        }
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
          drop(id);
          continue;
        }
      }
      finish_close(l);
      continue;
    }
    auto it = links_.find(id);
    if (it == links_.end()) continue;
    if ((evs[i].events & EPOLLOUT) && !flush(*it->second)) continue;
    if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) read(id);
    // Replies wait for the end of a batch so that several for one socket leave in one send(),
    // but not for a whole one: 256 events after a stall is ~2 ms of holding the first reply.
    if ((i + 1) % kFlushEvery == 0) flush_dirty();
  }
  flush_dirty();
  return count;
}

void RawSockets::read(LinkId id) {
  Link* l = links_.at(id).get();
  char buf[65536];
  // At most read_budget_ bytes per turn. A short read means the kernel had no more; anything
  // that arrives later raises a new edge.
  bool drained = false;
  for (std::size_t taken = 0; taken < read_budget_ && !drained;) {
    const std::size_t want = std::min(sizeof buf, read_budget_ - taken);
    ssize_t n = ::recv(l->fd, buf, want, 0);
    if (n == 0) return fail(id, "the client closed the connection");
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {  // an edge whose data an earlier read already took
        drained = true;
        break;
      }
      return fail(id, std::string("read failed: ") + std::strerror(errno));
    }
    l->in.append(buf, static_cast<std::size_t>(n));
    taken += static_cast<std::size_t>(n);
    drained = static_cast<std::size_t>(n) < want;
  }
  if (!drained && !l->unread) {  // the budget ran out with data maybe left: look again next round
    l->unread = true;
    unread_.push_back(id);
  }
  std::size_t at = 0;
  while (true) {
    auto it = links_.find(id);
    if (it == links_.end()) return;  // closed by a handler
    l = it->second.get();
    WsFrame f = parse_client_frame(l->in.data() + at, l->in.size() - at, max_payload_);
    if (f.status == WsFrame::incomplete) break;
    if (f.status == WsFrame::bad) {
      close(id, f.close_code, f.error);
      if (events_.closed) events_.closed(id, f.error);
      return;
    }
    std::string_view payload(l->in.data() + at + f.payload_at, f.payload_len);
    at += f.consumed;
    switch (static_cast<WsOp>(f.opcode)) {
      case WsOp::text:
        if (l->in_frag) {
          close(id, 1002, "a new message began inside a fragmented one");
          if (events_.closed) events_.closed(id, "WebSocket protocol error");
          return;
        }
        if (f.fin) {
          if (events_.text) events_.text(id, l->owner, payload);
        } else {
          l->in_frag = true;
          l->frag.assign(payload);
        }
        break;
      case WsOp::continuation:
        if (!l->in_frag || l->frag.size() + payload.size() > max_payload_) {
          close(id, l->in_frag ? 1009 : 1002, "bad or oversize continuation frame");
          if (events_.closed) events_.closed(id, "WebSocket protocol error");
          return;
        }
        l->frag.append(payload);
        if (f.fin) {
          l->in_frag = false;
          std::string whole = std::move(l->frag);
          std::string().swap(l->frag);
          if (events_.text) events_.text(id, l->owner, whole);
        }
        break;
      case WsOp::binary:
        close(id, 1003, "binary frames are not supported; send text");
        if (events_.closed) events_.closed(id, "binary frames are not supported; send text");
        return;
      case WsOp::ping: {
        std::string pong;
        append_server_frame(pong, WsOp::pong, payload);
        l->out += pong;
        if (!l->dirty) {
          l->dirty = true;
          dirty_.push_back(id);
        }
        break;
      }
      case WsOp::pong:
        break;
      case WsOp::close: {
        std::uint16_t code = f.payload_len >= 2 ? static_cast<std::uint16_t>(static_cast<unsigned char>(payload[0]) << 8 |
                                                                             static_cast<unsigned char>(payload[1]))
                                                : 1000;
        close(id, code == 1005 ? 1000 : code, "");
        if (events_.closed) events_.closed(id, "the client closed the WebSocket (" + std::to_string(code) + ")");
        return;
      }
    }
  }
  if (auto it = links_.find(id); it != links_.end()) {
    std::string& in = it->second->in;
    if (at == in.size()) in.clear();
    else if (at > 0) in.erase(0, at);
    // An idle socket keeps no large buffer: at 10,000 sockets that is most of the memory.
    if (in.empty() && in.capacity() > 4096) std::string().swap(in);
  }
}

std::size_t RawSockets::send_text(LinkId id, std::string_view payload) {
  auto it = links_.find(id);
  if (it == links_.end()) return 0;
  Link& l = *it->second;
  append_server_frame(l.out, WsOp::text, payload);
  if (batching_) {
    if (!l.dirty) {
      l.dirty = true;
      dirty_.push_back(id);
    }
  } else if (!flush(l)) {
    return 0;
  }
  return l.out.size() - l.out_at;
}

bool RawSockets::flush(Link& l) {
  while (l.out_at < l.out.size()) {
    ssize_t n = ::send(l.fd, l.out.data() + l.out_at, l.out.size() - l.out_at, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      const LinkId id = l.id;
      if (closing_.count(id)) drop(id);
      else fail(id, std::string("write failed: ") + std::strerror(errno));
      return false;
    }
    l.out_at += static_cast<std::size_t>(n);
  }
  if (l.out_at == l.out.size()) {
    l.out.clear();
    l.out_at = 0;
    if (l.out.capacity() > 4096) std::string().swap(l.out);
  } else if (l.out_at > (64u << 10) && l.out_at > l.out.size() / 2) {
    l.out.erase(0, l.out_at);
    l.out_at = 0;
  }
  want_output(l, !l.out.empty());
  return true;
}

void RawSockets::flush_dirty() {
  // Never re-entered (only dispatch calls it, and no event handler can), so flushing_ is free.
  if (dirty_.empty()) return;
  flushing_.clear();
  flushing_.swap(dirty_);
  for (auto id : flushing_) {
    if (auto it = links_.find(id); it != links_.end()) {
      it->second->dirty = false;
      flush(*it->second);
    } else if (auto c = closing_.find(id); c != closing_.end()) {
      c->second->dirty = false;
      if (flush(*c->second)) finish_close(*c->second);
    }
  }
}

void RawSockets::want_output(Link& l, bool on) {
  if (l.writing == on) return;
  l.writing = on;
  epoll_event ev{};
  ev.events = kInputEvents | (on ? static_cast<std::uint32_t>(EPOLLOUT) : 0u);
  ev.data.u64 = l.id;
  ::epoll_ctl(epfd_, EPOLL_CTL_MOD, l.fd, &ev);
}

void RawSockets::close(LinkId id, std::uint16_t code, std::string_view reason, bool discard) {
  auto it = links_.find(id);
  if (it == links_.end()) return;
  std::unique_ptr<Link> l = std::move(it->second);
  links_.erase(it);
  if (discard) {
    l->out.clear();
    l->out_at = 0;
  }
  append_server_frame(l->out, WsOp::close, close_payload(code, reason));
  l->closing_since = monotonic_ms();
  Link& ref = *l;
  closing_.emplace(id, std::move(l));
  if (batching_) {
    if (!ref.dirty) {
      ref.dirty = true;
      dirty_.push_back(id);
    }
    return;
  }
  if (flush(ref)) finish_close(ref);
}

void RawSockets::finish_close(Link& l) {
  if (l.fin_sent || !l.out.empty()) return;
  l.fin_sent = true;
  ::shutdown(l.fd, SHUT_WR);
}

std::size_t RawSockets::backlog(LinkId id) const {
  auto it = links_.find(id);
  return it == links_.end() ? 0 : it->second->out.size() - it->second->out_at;
}

void RawSockets::fail(LinkId id, const std::string& why) {
  if (!links_.count(id)) return;
  drop(id);
  if (events_.closed) events_.closed(id, why);
}

void RawSockets::drop(LinkId id) {
  std::unique_ptr<Link> l;
  if (auto it = links_.find(id); it != links_.end()) {
    l = std::move(it->second);
    links_.erase(it);
  } else if (auto c = closing_.find(id); c != closing_.end()) {
    l = std::move(c->second);
    closing_.erase(c);
  } else {
    return;
  }
  ::epoll_ctl(epfd_, EPOLL_CTL_DEL, l->fd, nullptr);
  ::shutdown(l->fd, SHUT_RDWR);
  g_io_stream_close(l->stream, nullptr, nullptr);
  g_object_unref(l->stream);
}

void RawSockets::reap(std::int64_t now_ms) {
  std::vector<LinkId> late;
  for (const auto& [id, l] : closing_)
    if (now_ms - l->closing_since > 2000) late.push_back(id);  // the peer never closed its side
  for (auto id : late) drop(id);
}

}  // namespace p2p::signal_server
