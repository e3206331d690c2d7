// bench/media/pipe_signaller: Signallers over one socketpair between two processes, so the
// benchmark can put the broadcaster and its watchers in separate processes (CPU is measured
// per process). One line per message; the same pipe carries the benchmark's control lines.
#pragma once
#include <glib.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "media/signaller.hpp"

namespace p2p::bench {

class PipeLink {
 public:
  PipeLink(int fd, GMainContext* ctx);  // takes the fd; non-blocking from now on
  ~PipeLink();
  PipeLink(const PipeLink&) = delete;
  PipeLink& operator=(const PipeLink&) = delete;

  // The broadcaster's end: every REQ line from the other process becomes session_requested.
  std::unique_ptr<media::Signaller> broadcaster_end();
  // A watcher's end for one session; start() sends the REQ.
  std::unique_ptr<media::Signaller> watcher_end(const std::string& session, const std::string& peer);

  // Lines that are not signalling, both ways.
  void send_control(const std::string& line);
  void set_on_control(std::function<void(const std::string& line)> cb);
  // The other process closed the pipe.
  void set_on_closed(std::function<void()> cb);

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// SDP spans lines; these keep a payload on one line.
std::string escape_line(const std::string& s);
std::string unescape_line(const std::string& s);

}  // namespace p2p::bench
