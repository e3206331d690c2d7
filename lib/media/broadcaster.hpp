// media/broadcaster: the sending side of `p2pstream broadcast`. One capture and one encoder per
// medium feed a tee; every watcher session gets its own webrtcbin branch, added and
// removed while the rest keeps streaming. Peers are reached only through a Signaller.
#pragma once
#include <glib.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "media/options.hpp"
#include "media/signaller.hpp"
#include "media/stats.hpp"

namespace p2p::media {

class Broadcaster {
 public:
  // All calls, and all callbacks, happen on ctx's thread (nullptr: the default main context),
  // which the caller runs (g_main_loop_run). The signaller must outlive the Broadcaster.
  // Throws UsageError for bad options.
  Broadcaster(BroadcastOptions options, Signaller& signaller, GMainContext* ctx = nullptr);
  ~Broadcaster();
  Broadcaster(const Broadcaster&) = delete;
  Broadcaster& operator=(const Broadcaster&) = delete;

  // Builds and plays the pipeline, then starts the signaller. Throws RuntimeError (with the
  // GStreamer error text) when the source or an encoder cannot start.
  void start();
  // Ends every session, stops the signaller and tears the pipeline down. Idempotent.
  void stop();
  bool running() const;

  BroadcastStats stats() const;
  std::vector<std::string> sessions() const;
  // Drops one watcher; the others keep streaming.
  void end_session(const std::string& session);
  // The launch text of the shared part of the pipeline (for --verbose and tests).
  std::string pipeline_description() const;

  // A fatal error (the source or encoder failed, or signalling failed): the broadcast stopped.
  void set_on_error(std::function<void(const std::string& message)> cb);
  // The source reached its end (a file); the broadcast stopped.
  void set_on_eos(std::function<void()> cb);
  // Once per stats interval.
  void set_on_stats(std::function<void(const BroadcastStats&)> cb);
  // A session changed state: "requested", "connected", "ended" (either side left) or
  // "failed: <why>" (ICE/DTLS, a refused answer, an error in its branch).
  void set_on_session(std::function<void(const std::string& session, const std::string& state)> cb);

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace p2p::media
