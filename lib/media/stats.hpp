// media/stats: the figures the broadcaster and watcher report once a second, their text and
// JSON renderings, the loss-driven bitrate rule (AIMD), and the reading of webrtcbin get-stats.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

typedef struct _GstStructure GstStructure;
typedef struct _GstElement GstElement;

namespace p2p::media {

struct WatchStats {
  double elapsed_s = 0;              // since Watcher::start
  std::string state = "waiting";     // waiting | connecting | playing | ended
  std::string video_codec;           // VP8 | H264 once known
  double fps = 0;                    // decoded (or recorded) frames per second, last interval
  double bitrate_kbps = 0;           // RTP bytes received per second, all streams
  std::uint64_t frames_decoded = 0;  // video frames out of the decoder (or into the muxer)
  std::uint64_t audio_buffers = 0;
  std::uint64_t packets_received = 0;
  std::int64_t packets_lost = 0;  // cumulative RTCP-style count; duplicates can make it dip
  double jitter_ms = 0;
  std::optional<double> rtt_ms;               // when RTCP gave one
  std::optional<double> decode_latency_ms;    // mean time a frame spent in the decoder
  std::optional<double> first_frame_ms;       // from start to the first decoded frame
  // Relay trees: where we are (parent "" and depth 0 before placement) and whom we serve.
  std::string parent;
  unsigned depth = 0;
  unsigned children = 0;            // relay sessions open now
  std::uint64_t frames_forwarded = 0;  // video frames passed to the relay tee
};

struct BroadcastStats {
  double elapsed_s = 0;
  unsigned watchers = 0;           // sessions with a peer connection
  unsigned connected = 0;          // of which ICE/DTLS are up
  unsigned target_kbps = 0;        // what the encoder is asked for now
  double sent_kbps = 0;            // encoder output, last interval
  double fps = 0;                  // encoded frames per second, last interval
  std::uint64_t frames_sent = 0;   // encoded video frames
  std::uint64_t keyframes_requested = 0;  // force-key-unit events sent to the encoder
  double worst_loss = 0;           // highest fraction lost reported by a watcher (0..1)
  std::optional<double> worst_rtt_ms;
};

std::string to_text(const WatchStats& s);
std::string to_json(const WatchStats& s);  // one line, no trailing newline
std::string to_text(const BroadcastStats& s);
std::string to_json(const BroadcastStats& s);

// AIMD on receiver-reported loss, in the spirit of the loss-based half of GCC:
// above 10% loss cut by (1 - loss/2); from 2% to 10% hold; below 2% add 5% of the ceiling.
unsigned next_bitrate_kbps(unsigned current_kbps, double loss_fraction, unsigned min_kbps,
                           unsigned max_kbps);

// What one get-stats reply says, summed over the RTP streams of one peer connection.
struct RtpTotals {
  // Receiver side (inbound-rtp).
  std::uint64_t bytes_received = 0;
  std::uint64_t packets_received = 0;
  std::int64_t packets_lost = 0;
  double jitter_s = 0;  // the worst stream's
  // Sender side (outbound-rtp and the remote-inbound-rtp that the watchers' RTCP fills).
  std::uint64_t packets_sent = 0;
  std::int64_t remote_packets_lost = 0;
  std::optional<double> remote_fraction_lost;  // worst stream's, 0..1
  std::optional<double> rtt_s;  // worst stream's: RTCP on the sender, NACK->RTX on the receiver
};
RtpTotals read_rtp_totals(const GstStructure* stats);

// The same figures read straight from the RTP sessions inside a webrtcbin (rtpbin's RTPSource
// stats, and its jitter buffers' retransmission RTT). webrtcbin 1.22's get-stats drops fields
// for streams whose SSRC the SDP did not list, so this is the reliable source. Call it from any
// thread; it only reads properties.
RtpTotals read_session_totals(GstElement* webrtcbin);

// The fields of one rtpsession source ("application/x-rtp-source-stats") added into t.
void add_source_stats(RtpTotals& t, const GstStructure* source);

}  // namespace p2p::media
