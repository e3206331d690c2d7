// media/watcher: the receiving side of `p2pstream watch`. A webrtcbin answers the parent's offer
// (any number of sendonly transceivers, some inactive, as browsers make) and the first live video
// and audio tracks go through tees to a decoder and sink, or to a muxer and file, and with
// --relay K to up to K children, all without re-encoding. When the server moves us under a new
// parent, only the incoming webrtcbin is replaced. Peers are reached only through a Signaller.
#pragma once
#include <glib.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "media/options.hpp"
#include "media/signaller.hpp"
#include "media/stats.hpp"

namespace p2p::media {

enum class WatchEnd {
  broadcaster_ended,  // the broadcaster stopped (or dropped us): a normal end
  error,              // the connection or the pipeline failed
};

class Watcher {
 public:
  // All calls and callbacks happen on ctx's thread (nullptr: the default main context), which
  // the caller runs. The signaller must outlive the Watcher. Throws UsageError for bad options,
  // e.g. WatchSink::display with no display.
  Watcher(WatchOptions options, Signaller& signaller, GMainContext* ctx = nullptr);
  ~Watcher();
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  // Starts the signaller (which asks the broadcaster for a session) and waits for the offer.
  void start();
  // Leaves the session and tears the pipeline down. Idempotent.
  void stop();
  bool ended() const;

  WatchStats stats() const;  // the latest figures, refreshed every stats interval
  // Decoded (or recorded) video frames so far; without decoding, the frames forwarded.
  std::uint64_t frames() const;
  std::uint64_t audio_buffers() const;     // decoded (or recorded) audio buffers so far
  std::uint64_t frames_forwarded() const;  // video frames received into the relay tee
  std::string session() const;             // the incoming session; "" until an offer arrived
  // Relays: the sessions of the children served now, and the keyframe requests sent to the
  // parent on their behalf (and on joining a new parent).
  std::vector<std::string> child_sessions() const;
  std::uint64_t keyframes_requested() const;
  // The factory names of every element in the pipeline, nested bins included (tests, --verbose).
  std::vector<std::string> element_factories() const;
  // The answer we sent ("" until then), for tests and --verbose.
  std::string local_answer() const;

  void set_on_stats(std::function<void(const WatchStats&)> cb);
  // Called once when watching ends for good; the pipeline is already stopped then.
  void set_on_end(std::function<void(WatchEnd why, const std::string& message)> cb);

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace p2p::media
