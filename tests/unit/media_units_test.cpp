// Unit tests for lib/media's pure parts: flag parsing, the AIMD rule, the latency stamp, stats
// rendering and reading, offer inspection, and the loopback hub's routing (no pipelines).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "media/frame_stamp.hpp"
#include "media/gst_util.hpp"
#include "media/loopback_signaller.hpp"
#include "media/options.hpp"
#include "media/stats.hpp"
#include "media/webrtc_util.hpp"
#include "util/error.hpp"

namespace p2p::media {
namespace {

TEST(MediaOptions, ParsesCodecsSizesAndSources) {
  EXPECT_EQ(parse_video_codec("vp8"), VideoCodec::vp8);
  EXPECT_EQ(parse_video_codec("H264"), VideoCodec::h264);
  EXPECT_THROW(parse_video_codec("av1"), UsageError);

  FrameSize fs = parse_size("1280x720");
  EXPECT_EQ(fs.width, 1280u);
  EXPECT_EQ(fs.height, 720u);
  for (const char* bad : {"640", "640x", "x480", "641x480", "8x8", "99999x480", "640x480x3", "-640x480"}) {
    EXPECT_THROW(parse_size(bad), UsageError) << bad;
  }

  EXPECT_EQ(parse_source("test").kind, SourceSpec::Kind::test);
  SourceSpec f = parse_source("file:/tmp/a b.mp4");
  EXPECT_EQ(f.kind, SourceSpec::Kind::file);
  EXPECT_EQ(f.arg, "/tmp/a b.mp4");
  SourceSpec p = parse_source("pipeline:'videotestsrc pattern=ball'");
  EXPECT_EQ(p.kind, SourceSpec::Kind::pipeline);
  EXPECT_EQ(p.arg, "videotestsrc pattern=ball");
  EXPECT_EQ(parse_source("v4l2:/dev/video3").arg, "/dev/video3");
  EXPECT_EQ(parse_source("uri:https://example.org/x.webm").kind, SourceSpec::Kind::uri);
  for (const char* bad : {"", "camera", "file:", "pipeline:''", "http://x"}) {
    EXPECT_THROW(parse_source(bad), UsageError) << bad;
  }
}

TEST(MediaOptions, ValidatesIceServers) {
  IceOptions ok{"stun://stun.example.org:3478", {"turn://user:pw@turn.example.org:3478", "turns://u:p@h:5349"}};
  EXPECT_NO_THROW(validate_ice(ok));
  for (const char* bad : {"stun.example.org:3478", "stun://host", "stun://host:0", "stun://:3478"}) {
    EXPECT_THROW(validate_ice(IceOptions{bad, {}}), UsageError) << bad;
  }
  for (const char* bad : {"turn://host:3478", "turn://user@host:3478", "http://u:p@h:1", "turn://u:p@h"}) {
    EXPECT_THROW(validate_ice(IceOptions{"", {bad}}), UsageError) << bad;
  }
}

TEST(MediaOptions, ValidatesBroadcastAndWatchOptions) {
  BroadcastOptions b;
  EXPECT_NO_THROW(b.validate());
  b.bitrate_kbps = 10;
  EXPECT_THROW(b.validate(), UsageError);
  b = {};
  b.source = "file:/definitely/not/here.mp4";
  EXPECT_THROW(b.validate(), UsageError);
  b = {};
  b.fps = 0;
  EXPECT_THROW(b.validate(), UsageError);
  b = {};
  b.size = {641, 480};
  EXPECT_THROW(b.validate(), UsageError);
  b = {};
  b.min_bitrate_kbps = b.bitrate_kbps + 1;
  EXPECT_THROW(b.validate(), UsageError);

  EXPECT_EQ(choose_sink(false, false, false, false), WatchSink::null);
  EXPECT_EQ(choose_sink(true, false, false, false), WatchSink::record);
  EXPECT_EQ(choose_sink(false, false, true, false), WatchSink::ascii);
  EXPECT_THROW(choose_sink(true, true, false, false), UsageError);
  EXPECT_THROW(choose_sink(false, false, true, true), UsageError);

  WatchOptions w;
  w.sink = WatchSink::record;
  EXPECT_THROW(w.validate(), UsageError);  // no file name
  w.output = "/no/such/dir/x.mkv";
  EXPECT_THROW(w.validate(), UsageError);
  w.output = "x.mkv";
  EXPECT_NO_THROW(w.validate());
  w.latency_ms = 20000;
  EXPECT_THROW(w.validate(), UsageError);
}

TEST(MediaRate, AimdCutsOnLossHoldsInBetweenAndProbesUp) {
  // 20% loss: x(1 - 0.1) = 900.
  EXPECT_EQ(next_bitrate_kbps(1000, 0.20, 100, 1500), 900u);
  // 50% loss: x0.75.
  EXPECT_EQ(next_bitrate_kbps(1000, 0.50, 100, 1500), 750u);
  // Between 2% and 10%: hold.
  EXPECT_EQ(next_bitrate_kbps(1000, 0.05, 100, 1500), 1000u);
  // Under 2%: + 5% of the ceiling (75 kbit/s), capped at the ceiling.
  EXPECT_EQ(next_bitrate_kbps(1000, 0.0, 100, 1500), 1075u);
  EXPECT_EQ(next_bitrate_kbps(1480, 0.0, 100, 1500), 1500u);
  // Never under the floor, bad input counts as no loss.
  EXPECT_EQ(next_bitrate_kbps(105, 1.0, 100, 1500), 100u);
  EXPECT_EQ(next_bitrate_kbps(1000, std::nan(""), 100, 1500), 1075u);
  EXPECT_EQ(next_bitrate_kbps(1000, -3.0, 100, 1500), 1075u);
  // Repeated 30% loss converges down to the floor, then no loss climbs back up to the ceiling.
  unsigned r = 1500;
  for (int i = 0; i < 40; ++i) r = next_bitrate_kbps(r, 0.30, 150, 1500);
  EXPECT_EQ(r, 150u);
  for (int i = 0; i < 40; ++i) r = next_bitrate_kbps(r, 0.0, 150, 1500);
  EXPECT_EQ(r, 1500u);
}

struct Plane {
  int width, height, stride;
  std::vector<std::uint8_t> bytes;
  Plane(int w, int h, int pad = 16) : width(w), height(h), stride(w + pad), bytes(std::size_t(stride) * h, 128) {}
  RawFrame frame() { return RawFrame{bytes.data(), stride, width, height}; }
};

TEST(MediaStamp, RoundTripsThroughNoiseAndRejectsDamage) {
  Plane p(640, 480);
  RawFrame f = p.frame();
  const std::uint64_t value = 0x123456789ABCull;
  ASSERT_TRUE(write_stamp(f, value));
  EXPECT_EQ(read_stamp(f), value);
  // Blocks are written where promised: block 0 carries sync bit 1 (white), block 1 bit 0 (black).
  EXPECT_GT(p.bytes[8 * p.stride + 8], 200);
  EXPECT_LT(p.bytes[8 * p.stride + 16 + 8], 40);
  // Coding noise of +-40 on every pixel still reads back.
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> noise(-40, 40);
  for (auto& b : p.bytes) b = static_cast<std::uint8_t>(std::clamp(int(b) + noise(rng), 0, 255));
  EXPECT_EQ(read_stamp(f), value);
  // Flip one value block: the CRC catches it.
  Plane q(640, 480);
  RawFrame g = q.frame();
  ASSERT_TRUE(write_stamp(g, value));
  int bx = 30 % kStampColumns, by = 30 / kStampColumns;
  std::uint8_t flipped = q.bytes[std::size_t(by * kStampBlock + 8) * q.stride + bx * kStampBlock + 8] > 128 ? 16 : 235;
  for (int r = 0; r < kStampBlock; ++r) {
    for (int c = 0; c < kStampBlock; ++c) q.bytes[std::size_t(by * kStampBlock + r) * q.stride + bx * kStampBlock + c] = flipped;
  }
  EXPECT_EQ(read_stamp(g), std::nullopt);
  // A frame with no stamp (flat grey) does not read.
  Plane grey(640, 480);
  RawFrame h = grey.frame();
  EXPECT_EQ(read_stamp(h), std::nullopt);
  // Too small to hold the grid.
  Plane tiny(320, 240);
  RawFrame t = tiny.frame();
  EXPECT_FALSE(write_stamp(t, value));
  EXPECT_EQ(read_stamp(t), std::nullopt);
}

TEST(MediaStamp, DeltaHandlesWrap) {
  EXPECT_EQ(stamp_delta(1500, 1000), 500);
  EXPECT_EQ(stamp_delta(1000, 1500), -500);
  EXPECT_EQ(stamp_delta(5, kStampMask - 4), 10);  // wrapped past 2^48
}

TEST(MediaStats, RendersTextAndJson) {
  WatchStats s;
  s.elapsed_s = 12.5;
  s.state = "playing";
  s.video_codec = "VP8";
  s.fps = 29.97;
  s.bitrate_kbps = 1450.4;
  s.frames_decoded = 360;
  s.audio_buffers = 600;
  s.packets_received = 2000;
  s.packets_lost = 3;
  s.jitter_ms = 1.25;
  s.rtt_ms = 2.5;
  auto j = nlohmann::json::parse(to_json(s));
  EXPECT_EQ(j["state"], "playing");
  EXPECT_EQ(j["video_codec"], "VP8");
  EXPECT_EQ(j["frames_decoded"], 360);
  EXPECT_EQ(j["packets_lost"], 3);
  EXPECT_NEAR(j["fps"].get<double>(), 29.97, 1e-9);
  EXPECT_NEAR(j["rtt_ms"].get<double>(), 2.5, 1e-9);
  EXPECT_TRUE(j["decode_latency_ms"].is_null());
  EXPECT_TRUE(j["first_frame_ms"].is_null());
  std::string text = to_text(s);
  EXPECT_NE(text.find("30.0 fps"), std::string::npos) << text;
  EXPECT_NE(text.find("frames 360"), std::string::npos) << text;
  EXPECT_NE(text.find("rtt 2.5ms"), std::string::npos) << text;
  EXPECT_NE(text.find("decode -"), std::string::npos) << text;

  s.state = "a\"b\n";  // never a broken document
  s.fps = std::nan("");
  EXPECT_NO_THROW(nlohmann::json::parse(to_json(s)));

  BroadcastStats b;
  b.watchers = 3;
  b.connected = 2;
  b.target_kbps = 1200;
  b.worst_loss = 0.125;
  auto jb = nlohmann::json::parse(to_json(b));
  EXPECT_EQ(jb["watchers"], 3);
  EXPECT_EQ(jb["target_kbps"], 1200);
  EXPECT_NEAR(jb["worst_loss"].get<double>(), 0.125, 1e-9);
  EXPECT_TRUE(jb["worst_rtt_ms"].is_null());
  EXPECT_NE(to_text(b).find("watchers 3 (2 connected)"), std::string::npos) << to_text(b);
  EXPECT_NE(to_text(b).find("loss 12.5%"), std::string::npos) << to_text(b);
}

// Builds a get-stats reply the way webrtcbin lays it out: one sub-structure per stats object.
GstStructure* stats_entry(GstWebRTCStatsType type, const char* name) {
  return gst_structure_new(name, "type", GST_TYPE_WEBRTC_STATS_TYPE, type, nullptr);
}

TEST(MediaStats, ReadsWebrtcbinStatsReplies) {
  ensure_gst_init();
  GstStructure* reply = gst_structure_new_empty("application/x-webrtc-stats");
  GstStructure* in1 = stats_entry(GST_WEBRTC_STATS_INBOUND_RTP, "inbound-rtp");
  gst_structure_set(in1, "bytes-received", G_TYPE_UINT64, guint64(1000), "packets-received", G_TYPE_UINT64,
                    guint64(10), "packets-lost", G_TYPE_INT64, gint64(2), "jitter", G_TYPE_DOUBLE, 0.004, nullptr);
  GstStructure* jb = gst_structure_new("application/x-rtp-jitterbuffer-stats", "rtx-rtt", G_TYPE_UINT64,
                                       guint64(3 * GST_MSECOND), nullptr);
  gst_structure_set(in1, "gst-rtpjitterbuffer-stats", GST_TYPE_STRUCTURE, jb, nullptr);
  gst_structure_free(jb);
  GstStructure* in2 = stats_entry(GST_WEBRTC_STATS_INBOUND_RTP, "inbound-rtp");
  gst_structure_set(in2, "bytes-received", G_TYPE_UINT64, guint64(500), "packets-received", G_TYPE_UINT64,
                    guint64(5), "packets-lost", G_TYPE_INT64, gint64(-1), "jitter", G_TYPE_DOUBLE, 0.010, nullptr);
  // Our video stream, with the receiver's last report block about it (as rtpsession keeps it).
  GstStructure* out = stats_entry(GST_WEBRTC_STATS_OUTBOUND_RTP, "outbound-rtp");
  gst_structure_set(out, "packets-sent", G_TYPE_UINT64, guint64(700), nullptr);
  GstStructure* rb = gst_structure_new("application/x-rtp-source-stats", "have-rb", G_TYPE_BOOLEAN, TRUE,
                                       "rb-packetslost", G_TYPE_INT, 7, "rb-fractionlost", G_TYPE_UINT, 64u,
                                       "rb-round-trip", G_TYPE_UINT, guint(65536 * 0.040), nullptr);
  gst_structure_set(out, "gst-rtpsource-stats", GST_TYPE_STRUCTURE, rb, nullptr);
  gst_structure_free(rb);
  // Audio: no report yet, so its stale rb-* fields must be ignored.
  GstStructure* out2 = stats_entry(GST_WEBRTC_STATS_OUTBOUND_RTP, "outbound-rtp");
  gst_structure_set(out2, "packets-sent", G_TYPE_UINT64, guint64(300), nullptr);
  GstStructure* norb = gst_structure_new("application/x-rtp-source-stats", "have-rb", G_TYPE_BOOLEAN, FALSE,
                                         "rb-packetslost", G_TYPE_INT, 99, "rb-fractionlost", G_TYPE_UINT, 255u,
                                         nullptr);
  gst_structure_set(out2, "gst-rtpsource-stats", GST_TYPE_STRUCTURE, norb, nullptr);
  gst_structure_free(norb);
  GstStructure* rin = stats_entry(GST_WEBRTC_STATS_REMOTE_INBOUND_RTP, "remote-inbound-rtp");
  gst_structure_set(rin, "packets-lost", G_TYPE_INT64, gint64(7), "fraction-lost", G_TYPE_DOUBLE, 0.125,
                    "round-trip-time", G_TYPE_DOUBLE, 0.010, nullptr);
  GstStructure* codec = stats_entry(GST_WEBRTC_STATS_CODEC, "codec");
  int i = 0;
  for (GstStructure* s : {in1, in2, out, out2, rin, codec}) {
    gst_structure_set(reply, ("entry" + std::to_string(i++)).c_str(), GST_TYPE_STRUCTURE, s, nullptr);
    gst_structure_free(s);
  }
  gst_structure_set(reply, "not-a-structure", G_TYPE_INT, 5, nullptr);
  RtpTotals t = read_rtp_totals(reply);
  gst_structure_free(reply);
  EXPECT_EQ(t.bytes_received, 1500u);
  EXPECT_EQ(t.packets_received, 15u);
  EXPECT_EQ(t.packets_lost, 1);
  EXPECT_NEAR(t.jitter_s, 0.010, 1e-12);
  EXPECT_EQ(t.packets_sent, 1000u);
  EXPECT_EQ(t.remote_packets_lost, 7);  // counted once, from the report block
  ASSERT_TRUE(t.remote_fraction_lost);
  EXPECT_NEAR(*t.remote_fraction_lost, 0.25, 1e-12);  // 64/256, the worst stream
  ASSERT_TRUE(t.rtt_s);
  EXPECT_NEAR(*t.rtt_s, 0.040, 1e-4);  // the largest of 40, 10 and the 3 ms NACK round trip
  EXPECT_EQ(read_rtp_totals(nullptr).packets_received, 0u);
}

// A browser-style offer: unused transceivers, codecs we cannot decode, rtx/red/fec.
const char* kBrowserOffer =
    "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "a=group:BUNDLE 0 1 2 3\r\na=msid-semantic: WMS stream\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n"
    "a=rtpmap:111 opus/48000/2\r\na=rtpmap:63 red/48000/2\r\na=rtpmap:0 PCMU/8000\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 45 98 99 96 97\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendrecv\r\n"
    "a=rtpmap:45 AV1/90000\r\na=rtpmap:98 VP9/90000\r\na=rtpmap:99 rtx/90000\r\na=fmtp:99 apt=98\r\n"
    "a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\na=inactive\r\na=rtpmap:111 opus/48000/2\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 45\r\nc=IN IP4 0.0.0.0\r\na=mid:3\r\na=sendonly\r\na=rtpmap:45 AV1/90000\r\n"
    "m=video 0 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:4\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:5\r\na=recvonly\r\na=rtpmap:96 VP8/90000\r\n"
    "m=audio 0 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:6\r\na=bundle-only\r\na=sendonly\r\n"
    "a=rtpmap:111 opus/48000/2\r\n";

TEST(MediaOffer, SummarisesBrowserOffers) {
  auto m = summarize_offer(kBrowserOffer);
  ASSERT_EQ(m.size(), 7u);
  EXPECT_EQ(m[0].kind, "audio");
  EXPECT_EQ(m[0].direction, "sendonly");
  EXPECT_EQ(m[0].codecs, (std::vector<std::string>{"OPUS", "RED", "PCMU"}));
  EXPECT_TRUE(m[0].receivable);
  EXPECT_EQ(m[1].codecs, (std::vector<std::string>{"AV1", "VP9", "RTX", "VP8"}));
  EXPECT_TRUE(m[1].receivable);
  EXPECT_EQ(m[2].direction, "inactive");
  EXPECT_FALSE(m[2].receivable);
  EXPECT_FALSE(m[3].receivable);  // AV1 only
  EXPECT_TRUE(m[4].rejected);     // port 0
  EXPECT_FALSE(m[4].receivable);
  EXPECT_FALSE(m[5].receivable);  // the peer wants to receive, not send
  EXPECT_FALSE(m[6].rejected);    // port 0, but bundle-only: it rides on the first m-line's port
  EXPECT_TRUE(m[6].receivable);
  EXPECT_THROW(summarize_offer("this is not sdp"), RuntimeError);
}

// Records what one endpoint heard, in order.
struct Ear {
  std::vector<std::string> heard;
  SignallerEvents events() {
    SignallerEvents e;
    e.session_requested = [this](const std::string& s, const std::string& p) { heard.push_back("req " + s + " " + p); };
    e.remote_sdp = [this](const std::string& s, const Sdp& sdp) {
      heard.push_back(std::string("sdp ") + s + " " + to_string(sdp.type) + " " + sdp.text);
    };
    e.remote_ice = [this](const std::string& s, const std::string& c, unsigned m) {
      heard.push_back("ice " + s + " " + c + " " + std::to_string(m));
    };
    e.session_ended = [this](const std::string& s) { heard.push_back("end " + s); };
    return e;
  }
};

TEST(MediaLoopbackHub, RoutesSessionsInOrder) {
  ensure_gst_init();
  LoopbackHub hub;
  Ear bear, wear1, wear2;
  auto w1 = hub.watcher("alice");
  w1->set_events(wear1.events());
  w1->start();  // before the broadcaster: the request waits for it
  auto b = hub.broadcaster();
  b->set_events(bear.events());
  b->start();
  auto w2 = hub.watcher("bob");
  w2->set_events(wear2.events());
  w2->start();
  ASSERT_TRUE(iterate_until(nullptr, [&] { return bear.heard.size() == 2; }, std::chrono::seconds(2)));
  EXPECT_EQ(bear.heard[0], "req session-1 alice");
  EXPECT_EQ(bear.heard[1], "req session-2 bob");
  EXPECT_EQ(hub.open_sessions(), 2u);

  b->send_sdp("session-1", Sdp{SdpType::offer, "O1"});
  b->add_ice("session-1", "candidate:a", 0);
  b->add_ice("session-1", "candidate:b", 1);
  b->send_sdp("session-2", Sdp{SdpType::offer, "O2"});
  w1->send_sdp("session-1", Sdp{SdpType::answer, "A1"});
  w1->add_ice("session-2", "candidate:not-mine", 0);  // not w1's session: dropped
  b->send_sdp("session-9", Sdp{SdpType::offer, "nobody"});
  ASSERT_TRUE(iterate_until(nullptr, [&] { return wear1.heard.size() == 3 && bear.heard.size() == 3; },
                            std::chrono::seconds(2)));
  EXPECT_EQ(wear1.heard, (std::vector<std::string>{"sdp session-1 offer O1", "ice session-1 candidate:a 0",
                                                   "ice session-1 candidate:b 1"}));
  EXPECT_EQ(bear.heard[2], "sdp session-1 answer A1");
  ASSERT_TRUE(iterate_until(nullptr, [&] { return wear2.heard.size() == 1; }, std::chrono::seconds(2)));
  EXPECT_EQ(wear2.heard[0], "sdp session-2 offer O2");

  // A watcher leaving ends its session at the broadcaster only.
  w1->stop();
  ASSERT_TRUE(iterate_until(nullptr, [&] { return bear.heard.size() == 4; }, std::chrono::seconds(2)));
  EXPECT_EQ(bear.heard[3], "end session-1");
  EXPECT_EQ(hub.open_sessions(), 1u);
  // The broadcaster stopping ends every remaining session at the watchers.
  b->stop();
  ASSERT_TRUE(iterate_until(nullptr, [&] { return wear2.heard.size() == 2; }, std::chrono::seconds(2)));
  EXPECT_EQ(wear2.heard[1], "end session-2");
  EXPECT_EQ(hub.open_sessions(), 0u);
  EXPECT_EQ(wear1.heard.size(), 3u);  // nothing after it left
}

TEST(MediaLoopbackHub, DropsMessagesToDestroyedEndpoints) {
  ensure_gst_init();
  LoopbackHub hub;
  Ear bear;
  auto b = hub.broadcaster();
  b->set_events(bear.events());
  b->start();
  {
    auto w = hub.watcher("carol");
    Ear wear;
    w->set_events(wear.events());
    w->start();
    b->send_sdp("session-1", Sdp{SdpType::offer, "late"});  // queued, then its target goes away
  }
  ASSERT_TRUE(iterate_until(nullptr, [&] { return bear.heard.size() == 2; }, std::chrono::seconds(2)));
  EXPECT_EQ(bear.heard[0], "req session-1 carol");
  EXPECT_EQ(bear.heard[1], "end session-1");
}

// The RTP elements webrtcbin makes inside itself get our feedback timing, wherever they are
// nested: regular RTCP often enough that a NACK never waits for a slot, and gaps NACKed at once.
TEST(MediaWebrtcbin, TunesTheRtpElementsItContains) {
  ensure_gst_init();
  GstElement* webrtc = make_webrtcbin(IceOptions{}, "tuned");
  GstElement* inner = gst_bin_new("inner");
  ASSERT_TRUE(gst_bin_add(GST_BIN(webrtc), inner));
  GstElement* session = make_element("rtpsession");
  GstElement* jitter = make_element("rtpjitterbuffer");
  GstElement* bystander = make_element("rtpjitterbuffer");  // never inside a webrtcbin
  gst_bin_add_many(GST_BIN(inner), session, jitter, nullptr);

  guint64 min_interval = 0;
  gdouble fraction = 0;
  g_object_get(session, "rtcp-min-interval", &min_interval, "rtcp-fraction", &fraction, nullptr);
  EXPECT_EQ(min_interval, 50 * GST_MSECOND);
  EXPECT_DOUBLE_EQ(fraction, 0.2);
  gboolean next_seqnum = TRUE;
  gint rtx_delay = -1;
  g_object_get(jitter, "rtx-next-seqnum", &next_seqnum, "rtx-delay", &rtx_delay, nullptr);
  EXPECT_FALSE(next_seqnum);
  EXPECT_EQ(rtx_delay, 5);
  // GStreamer's own defaults, so the figures above are ours and not theirs.
  g_object_get(bystander, "rtx-next-seqnum", &next_seqnum, "rtx-delay", &rtx_delay, nullptr);
  EXPECT_TRUE(next_seqnum);
  EXPECT_EQ(rtx_delay, -1);
  gst_object_unref(bystander);
  gst_object_unref(webrtc);
}

}  // namespace
}  // namespace p2p::media
