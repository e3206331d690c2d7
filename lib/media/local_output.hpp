// media/local_output: what a watcher does with the stream itself, behind its tees: decode and
// show it, decode and drop it, record it to a file without re-encoding, or only count it. Owns
// the muxer, the frame and audio counters and the decode-latency figure.
#pragma once
#include <gst/gst.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "media/options.hpp"

namespace p2p::media {

// A sink that may be added while the pipeline plays (no preroll), rendering in time or not.
GstElement* live_sink(const char* factory, bool sync);

class LocalOutput {
 public:
  explicit LocalOutput(const WatchOptions& opts) : opts_(opts) {}
  ~LocalOutput();
  LocalOutput(const LocalOutput&) = delete;
  LocalOutput& operator=(const LocalOutput&) = delete;

  // Recording: the muxer wants each track's pad before any data, so this asks for those the
  // offer announces. Once; nothing unless recording.
  void prepare_recording(GstElement* pipeline, bool video, bool audio);
  // Our branch behind the tee, built the first time a track of that kind arrives (streaming
  // thread). True when it feeds the muxer: a recorded track that never comes must then be
  // given up with release_unused_tracks().
  bool build_video(GstElement* pipeline, GstElement* tee, const std::string& codec);
  bool build_audio(GstElement* pipeline, GstElement* tee);
  // Lets the muxer write the file without the tracks that never came.
  void release_unused_tracks();
  // The pipeline is gone: drop our references to its pads.
  void forget();

  // Without decoding, what reached the tees is what counts.
  void count_undecoded_frame() { frame_out(); }
  void count_undecoded_audio() { audio_.fetch_add(1, std::memory_order_relaxed); }

  std::uint64_t frames() const { return frames_.load(); }
  std::uint64_t audio_buffers() const { return audio_.load(); }
  std::int64_t first_frame_us() const { return first_frame_us_.load(); }  // monotonic; -1 before
  // Mean decode time since the last call; nothing if no frame was decoded.
  std::optional<double> take_decode_latency_ms();

 private:
  struct Chain {
    std::vector<GstElement*> elements;
    GstPad* mux_pad = nullptr;  // a recording chain ends in this muxer pad
  };
  Chain video_chain(const std::string& codec);
  Chain audio_chain();
  bool link_from_tee(GstElement* pipeline, GstElement* tee, const Chain& chain);
  void probe(GstElement* e, const char* pad_name, GstPadProbeCallback cb);
  void frame_out();

  static GstPadProbeReturn count_video(GstPad*, GstPadProbeInfo*, gpointer d);
  static GstPadProbeReturn count_audio(GstPad*, GstPadProbeInfo*, gpointer d);
  static GstPadProbeReturn into_decoder(GstPad*, GstPadProbeInfo* info, gpointer d);
  static GstPadProbeReturn out_of_decoder(GstPad* pad, GstPadProbeInfo* info, gpointer d);
  void deliver_frame(GstPad* pad, GstBuffer* buf);

  WatchOptions opts_;
  std::mutex mutex_;  // everything below that streaming threads touch, but the atomics
  bool video_built_ = false, audio_built_ = false;
  GstElement* mux_ = nullptr;
  GstPad* mux_video_ = nullptr;
  GstPad* mux_audio_ = nullptr;
  // The recording's time zero: its first buffer, not the pipeline's start before the connection.
  std::deque<std::pair<GstClockTime, std::int64_t>> in_decoder_;  // pts -> when it went in
  double decode_sum_ms_ = 0;
  std::uint64_t decode_count_ = 0;
  std::atomic<std::uint64_t> frames_{0}, audio_{0};
  std::atomic<std::int64_t> first_frame_us_{-1};
};

}  // namespace p2p::media
