// bench/media/pipe_signaller: line framing, non-blocking writes with a queue, and routing of
// sessions to the endpoints on each side of the pipe.
#include "pipe_signaller.hpp"

#include <fcntl.h>
#include <glib-unix.h>
#include <unistd.h>

#include <cerrno>
#include <sstream>

namespace p2p::bench {

using media::Sdp;
using media::SdpType;
using media::Signaller;
using media::SignallerEvents;

std::string escape_line(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else out += c;
  }
  return out;
}

std::string unescape_line(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out += s[i];
      continue;
    }
    char n = s[++i];
    out += n == 'n' ? '\n' : n == 'r' ? '\r' : n;
  }
  return out;
}

struct PipeLink::Impl : std::enable_shared_from_this<PipeLink::Impl> {
  int fd = -1;
  GMainContext* ctx = nullptr;
  GSource* in_src = nullptr;
  GSource* out_src = nullptr;
  std::string inbuf, outbuf;
  SignallerEvents* broadcaster = nullptr;
  std::map<std::string, SignallerEvents*> watchers;
  std::function<void(const std::string&)> on_control;
  std::function<void()> on_closed;
  bool closed = false;

  void send(const std::string& line) {
    if (closed) return;
    outbuf += line;
    outbuf += '\n';
    flush();
  }

  void flush() {
    while (!outbuf.empty()) {
      ssize_t n = ::write(fd, outbuf.data(), outbuf.size());
      if (n > 0) {
        outbuf.erase(0, std::size_t(n));
      } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        arm_out();
        return;
      } else {
        close_link();
        return;
      }
    }
  }

  void arm_out() {
    if (out_src != nullptr) return;
    out_src = g_unix_fd_source_new(fd, G_IO_OUT);
    g_source_set_callback(out_src, G_SOURCE_FUNC(+[](gint, GIOCondition, gpointer d) {
                            auto* self = static_cast<Impl*>(d);
                            g_source_unref(self->out_src);
                            self->out_src = nullptr;
                            self->flush();
                            return gboolean(G_SOURCE_REMOVE);
                          }),
                          this, nullptr);
    g_source_attach(out_src, ctx);
  }

  void start_reading() {
    in_src = g_unix_fd_source_new(fd, GIOCondition(G_IO_IN | G_IO_HUP | G_IO_ERR));
    g_source_set_callback(in_src, G_SOURCE_FUNC(+[](gint, GIOCondition, gpointer d) {
                            static_cast<Impl*>(d)->readable();
                            return gboolean(G_SOURCE_CONTINUE);
                          }),
                          this, nullptr);
    g_source_attach(in_src, ctx);
  }

  void readable() {
    auto keep = shared_from_this();  // a callback may drop the last outside reference
    char buf[65536];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n > 0) {
        inbuf.append(buf, std::size_t(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
      close_link();  // EOF or error
      break;
    }
    std::size_t nl;
    while ((nl = inbuf.find('\n')) != std::string::npos) {
      std::string line = inbuf.substr(0, nl);
      inbuf.erase(0, nl + 1);
      dispatch(line);
    }
  }

  void close_link() {
    if (closed) return;
    closed = true;
    if (in_src != nullptr) {
      g_source_destroy(in_src);
      g_source_unref(in_src);
      in_src = nullptr;
    }
    if (auto cb = on_closed) cb();
  }

  SignallerEvents* target(const std::string& session) {
    if (broadcaster != nullptr) return broadcaster;
    auto it = watchers.find(session);
    return it == watchers.end() ? nullptr : it->second;
  }

  void dispatch(const std::string& line) {
    std::istringstream in(line);
    std::string kind, session;
    in >> kind >> session;
    std::string rest;
    std::getline(in, rest);
    if (!rest.empty() && rest.front() == ' ') rest.erase(0, 1);
    if (kind == "CTL") {
      if (auto cb = on_control) cb(session + (rest.empty() ? "" : " " + rest));
      return;
    }
    SignallerEvents* t = target(session);
    if (t == nullptr) return;
    SignallerEvents ev = *t;  // a callback may destroy the endpoint
    if (kind == "REQ" && ev.session_requested) {
      ev.session_requested(session, rest);
    } else if (kind == "SDP" && ev.remote_sdp) {
      auto sp = rest.find(' ');
      if (sp == std::string::npos) return;
      Sdp sdp{rest.substr(0, sp) == "offer" ? SdpType::offer : SdpType::answer, unescape_line(rest.substr(sp + 1))};
      ev.remote_sdp(session, sdp);
    } else if (kind == "ICE" && ev.remote_ice) {
      auto sp = rest.find(' ');
      if (sp == std::string::npos) return;
      ev.remote_ice(session, unescape_line(rest.substr(sp + 1)), unsigned(std::stoul(rest.substr(0, sp))));
    } else if (kind == "END" && ev.session_ended) {
      ev.session_ended(session);
    }
  }

  ~Impl() {
    if (in_src != nullptr) {
      g_source_destroy(in_src);
      g_source_unref(in_src);
    }
    if (out_src != nullptr) {
      g_source_destroy(out_src);
      g_source_unref(out_src);
    }
    if (fd >= 0) ::close(fd);
  }
};

namespace {

class BroadcasterEnd : public Signaller {
 public:
  explicit BroadcasterEnd(std::shared_ptr<PipeLink::Impl> link) : link_(std::move(link)) {}
  ~BroadcasterEnd() override { link_->broadcaster = nullptr; }
  void set_events(SignallerEvents events) override {
    events_ = std::move(events);
    link_->broadcaster = &events_;
  }
  void start() override {}
  void stop() override {}
  void send_sdp(const std::string& s, const Sdp& sdp) override {
    link_->send("SDP " + s + " " + media::to_string(sdp.type) + " " + escape_line(sdp.text));
  }
  void add_ice(const std::string& s, const std::string& c, unsigned mline) override {
    link_->send("ICE " + s + " " + std::to_string(mline) + " " + escape_line(c));
  }
  void end_session(const std::string& s) override { link_->send("END " + s); }

 private:
  std::shared_ptr<PipeLink::Impl> link_;
  SignallerEvents events_;
};

class WatcherEnd : public Signaller {
 public:
  WatcherEnd(std::shared_ptr<PipeLink::Impl> link, std::string session, std::string peer)
      : link_(std::move(link)), session_(std::move(session)), peer_(std::move(peer)) {}
  ~WatcherEnd() override {
    stop();
    link_->watchers.erase(session_);
  }
  void set_events(SignallerEvents events) override {
    events_ = std::move(events);
    link_->watchers[session_] = &events_;
  }
  void start() override {
    if (started_) return;
    started_ = true;
    link_->send("REQ " + session_ + " " + peer_);
  }
  void stop() override {
    if (!started_) return;
    started_ = false;
    link_->send("END " + session_);
  }
  void send_sdp(const std::string& s, const Sdp& sdp) override {
    link_->send("SDP " + s + " " + media::to_string(sdp.type) + " " + escape_line(sdp.text));
  }
  void add_ice(const std::string& s, const std::string& c, unsigned mline) override {
    link_->send("ICE " + s + " " + std::to_string(mline) + " " + escape_line(c));
  }
  void end_session(const std::string& s) override {
    if (s == session_) stop();
  }

 private:
  std::shared_ptr<PipeLink::Impl> link_;
  std::string session_, peer_;
  bool started_ = false;
  SignallerEvents events_;
};

}  // namespace

PipeLink::PipeLink(int fd, GMainContext* ctx) : impl_(std::make_shared<Impl>()) {
  impl_->fd = fd;
  impl_->ctx = ctx != nullptr ? ctx : g_main_context_default();
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  impl_->start_reading();
}

PipeLink::~PipeLink() = default;

std::unique_ptr<Signaller> PipeLink::broadcaster_end() { return std::make_unique<BroadcasterEnd>(impl_); }

std::unique_ptr<Signaller> PipeLink::watcher_end(const std::string& session, const std::string& peer) {
  return std::make_unique<WatcherEnd>(impl_, session, peer);
}

void PipeLink::send_control(const std::string& line) { impl_->send("CTL " + line); }
void PipeLink::set_on_control(std::function<void(const std::string&)> cb) { impl_->on_control = std::move(cb); }
void PipeLink::set_on_closed(std::function<void()> cb) { impl_->on_closed = std::move(cb); }

}  // namespace p2p::bench
