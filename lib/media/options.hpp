// media/options: what `p2pstream broadcast` and `p2pstream watch` can ask of the pipelines,
// mirroring their flags, plus the parsers and checks that turn flag text into these structs.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace p2p::media {

enum class VideoCodec { vp8, h264 };

// --video vp8|h264 (case-insensitive); UsageError otherwise.
VideoCodec parse_video_codec(std::string_view text);
const char* to_string(VideoCodec codec);

struct FrameSize {
  unsigned width = 640;
  unsigned height = 480;
};
// --size WxH, e.g. 640x480; both even and within 16..4096.
FrameSize parse_size(std::string_view text);

// --bitrate: kbit/s from 1500, 1500k, 2M or 2.5M (SI: k = 1000); UsageError otherwise.
unsigned parse_bitrate_kbps(std::string_view text);

// --source test | file:PATH | v4l2:/dev/videoN | uri:URL | pipeline:'gst-launch bin'
struct SourceSpec {
  enum class Kind { test, file, v4l2, uri, pipeline };
  Kind kind = Kind::test;
  std::string arg;  // path, device, uri or pipeline text; empty for test
};
SourceSpec parse_source(std::string_view text);

// --stun stun://host:port, --turn turn(s)://user:pass@host:port (repeatable).
struct IceOptions {
  std::string stun;
  std::vector<std::string> turn;
  bool ice_tcp = false;  // host TCP candidates; off by default: they only slow gathering
};
void validate_ice(const IceOptions& ice);

// A raw video frame's luma plane, for the latency stamp (bench) and tests. Valid only during
// the callback, which runs on a GStreamer streaming thread.
struct RawFrame {
  std::uint8_t* luma = nullptr;
  int stride = 0;
  int width = 0;
  int height = 0;
};

struct BroadcastOptions {
  std::string source = "test";
  VideoCodec video = VideoCodec::vp8;
  unsigned bitrate_kbps = 1500;  // the ceiling; loss lowers the encoder below it
  FrameSize size{};
  unsigned fps = 30;
  bool audio = true;
  IceOptions ice{};
  unsigned keyframe_interval_s = 2;  // short: keyframe requests do not always arrive
  bool adapt_bitrate = true;
  unsigned min_bitrate_kbps = 100;
  unsigned stats_interval_ms = 1000;
  unsigned shutdown_timeout_ms = 5000;
  // Called for every raw frame just before the encoder (streaming thread); may write pixels.
  std::function<void(RawFrame&)> before_encode;
  // Drops this fraction of each watcher's video RTP packets before webrtcbin, evenly spread,
  // so they are lost for good (tests and benchmarks of the loss handling; 0..0.5).
  double simulate_loss = 0;
  // Relay trees (--max-direct): most watchers served directly; the rest go to relaying
  // watchers. 0 = no limit.
  unsigned max_direct = 0;

  void validate() const;  // UsageError naming the bad flag
};

enum class WatchSink {
  null,     // decode and drop (--null, or --stats alone)
  display,  // a window; refused when no display exists
  ascii,    // aasink on stdout
  record,   // --output FILE: mux without re-encoding
};
// Picks the sink from the watch flags; UsageError when more than one is given.
WatchSink choose_sink(bool output, bool display, bool ascii, bool null_sink);

struct WatchOptions {
  WatchSink sink = WatchSink::null;
  std::string output;       // with WatchSink::record: .mkv (matroska) or .webm (VP8 only)
  unsigned latency_ms = 50;  // jitter buffer; NACK is only turned on from 50 ms up
  bool audio = true;
  bool decode = true;  // false: count depayloaded frames without decoding (fan-out benchmarks)
  IceOptions ice{};
  unsigned stats_interval_ms = 1000;
  unsigned shutdown_timeout_ms = 5000;
  // Called for every decoded video frame (streaming thread).
  std::function<void(const RawFrame&)> on_video_frame;
  // --relay K (0..8): children served from the received stream without re-encoding.
  unsigned relay_slots = 0;

  void validate() const;
};

}  // namespace p2p::media
