// Pipeline tests for lib/media: a broadcaster and watchers in one process over the loopback
// signaller, real webrtcbin/ICE/DTLS on this machine's interfaces, each bounded in time.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "media/broadcaster.hpp"
#include "media/gst_util.hpp"
#include "media/loopback_signaller.hpp"
#include "media/watcher.hpp"
#include "media/webrtc_util.hpp"
#include "util/error.hpp"

namespace p2p::media {
namespace {

using namespace std::chrono_literals;

// Small frames keep these tests light on a busy 2-core machine.
BroadcastOptions small_broadcast(VideoCodec codec) {
  BroadcastOptions o;
  o.video = codec;
  o.size = {320, 240};
  o.fps = 15;
  o.bitrate_kbps = 400;
  o.keyframe_interval_s = 1;
  o.stats_interval_ms = 500;
  return o;
}

WatchOptions null_watch() {
  WatchOptions o;
  o.stats_interval_ms = 500;
  return o;
}

bool wait_for(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  return iterate_until(nullptr, done, timeout);
}

std::string describe(const Watcher& w) { return to_text(w.stats()); }

class MediaPipeline : public ::testing::TestWithParam<VideoCodec> {
 protected:
  void SetUp() override {
    ensure_gst_init();
    dir_ = std::filesystem::temp_directory_path() /
           ("p2p-media-test-" + std::to_string(getpid()) + "-" + std::to_string(counter_++));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  LoopbackHub hub_;
  std::filesystem::path dir_;
  static inline int counter_ = 0;
};

TEST_P(MediaPipeline, TwoWatchersDecodeVideoAndAudio) {
  auto bsig = hub_.broadcaster();
  Broadcaster b(small_broadcast(GetParam()), *bsig);
  b.start();
  auto s1 = hub_.watcher("alice");
  auto s2 = hub_.watcher("bob");
  Watcher w1(null_watch(), *s1);
  Watcher w2(null_watch(), *s2);
  w1.start();
  w2.start();
  ASSERT_TRUE(wait_for([&] {
    return w1.frames() > 30 && w2.frames() > 30 && w1.audio_buffers() > 25 && w2.audio_buffers() > 25;
  }, 18s)) << describe(w1) << " | " << describe(w2);
  EXPECT_EQ(b.sessions().size(), 2u);
  EXPECT_FALSE(w1.ended());
  // The stats line catches up within one interval.
  ASSERT_TRUE(wait_for([&] {
    return w1.stats().frames_decoded > 30 && w1.stats().bitrate_kbps > 0 && b.stats().frames_sent > 30;
  }, 3s));
  WatchStats st = w1.stats();
  EXPECT_EQ(st.video_codec, GetParam() == VideoCodec::vp8 ? "VP8" : "H264");
  EXPECT_EQ(st.state, "playing");
  EXPECT_GT(st.packets_received, 0u);
  ASSERT_TRUE(st.first_frame_ms);
  EXPECT_GT(*st.first_frame_ms, 0.0);
  ASSERT_TRUE(st.decode_latency_ms);
  EXPECT_LT(*st.decode_latency_ms, 500.0);
  EXPECT_NE(w1.local_answer().find("a=recvonly"), std::string::npos);
  BroadcastStats bs = b.stats();
  EXPECT_EQ(bs.watchers, 2u);
  EXPECT_EQ(bs.connected, 2u);
  EXPECT_GT(bs.frames_sent, 30u);
  EXPECT_GE(bs.keyframes_requested, 2u);  // one per watcher joining, at least
}

struct FileSummary {
  std::map<std::string, std::uint64_t> buffers;  // caps name -> buffers demuxed
  std::string error;
};

// Demuxes a recording in-process and counts each stream's buffers, by caps name.
FileSummary demux(const std::filesystem::path& file) {
  FileSummary out;
  std::string launch = "filesrc location=\"" + file.string() + "\" ! matroskademux name=d";
  GError* err = nullptr;
  GstElement* pipe = gst_parse_launch(launch.c_str(), &err);
  if (err != nullptr) {
    out.error = err->message;
    g_clear_error(&err);
    if (pipe != nullptr) gst_object_unref(pipe);
    return out;
  }
  struct Ctx {
    GstElement* pipe;
    std::mutex m;
    FileSummary* out;
  } ctx{pipe, {}, &out};
  GstElement* demuxer = gst_bin_get_by_name(GST_BIN(pipe), "d");
  g_signal_connect(demuxer, "pad-added", G_CALLBACK(+[](GstElement*, GstPad* pad, gpointer d) {
    auto* c = static_cast<Ctx*>(d);
    GstElement* sink = gst_element_factory_make("fakesink", nullptr);
    g_object_set(sink, "async", FALSE, "sync", FALSE, nullptr);
    gst_bin_add(GST_BIN(c->pipe), sink);
    gst_element_sync_state_with_parent(sink);
    GstPad* sp = gst_element_get_static_pad(sink, "sink");
    gst_pad_link(pad, sp);
    gst_object_unref(sp);
    GstCaps* caps = gst_pad_get_current_caps(pad);
    std::string name = caps != nullptr ? gst_structure_get_name(gst_caps_get_structure(caps, 0)) : "?";
    if (caps != nullptr) gst_caps_unref(caps);
    {
      std::lock_guard lock(c->m);
      c->out->buffers[name] = 0;
    }
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, +[](GstPad* p, GstPadProbeInfo*, gpointer d2) {
      auto* c2 = static_cast<Ctx*>(d2);
      GstCaps* cp = gst_pad_get_current_caps(p);
      std::string n = cp != nullptr ? gst_structure_get_name(gst_caps_get_structure(cp, 0)) : "?";
      if (cp != nullptr) gst_caps_unref(cp);
      std::lock_guard lock(c2->m);
      ++c2->out->buffers[n];
      return GST_PAD_PROBE_OK;
    }, c, nullptr);
  }), &ctx);
  gst_object_unref(demuxer);
  gst_element_set_state(pipe, GST_STATE_PLAYING);
  GstBus* bus = gst_element_get_bus(pipe);
  GstMessage* msg = gst_bus_timed_pop_filtered(bus, 10 * GST_SECOND,
                                               GstMessageType(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  if (msg == nullptr) {
    out.error = "no EOS within 10 s";
  } else if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
    GError* e = nullptr;
    gst_message_parse_error(msg, &e, nullptr);
    out.error = e != nullptr ? e->message : "error";
    g_clear_error(&e);
  }
  if (msg != nullptr) gst_message_unref(msg);
  gst_object_unref(bus);
  gst_element_set_state(pipe, GST_STATE_NULL);
  gst_object_unref(pipe);
  return out;
}

TEST_P(MediaPipeline, RecordsToMatroskaWithoutReencoding) {
  auto bsig = hub_.broadcaster();
  Broadcaster b(small_broadcast(GetParam()), *bsig);
  b.start();
  auto s1 = hub_.watcher("recorder");
  auto s2 = hub_.watcher("viewer");
  WatchOptions rec = null_watch();
  rec.sink = WatchSink::record;
  rec.output = (dir_ / "rec.mkv").string();
  Watcher recorder(rec, *s1);
  Watcher viewer(null_watch(), *s2);
  recorder.start();
  viewer.start();
  ASSERT_TRUE(wait_for([&] { return recorder.frames() >= 45 && recorder.audio_buffers() >= 40; }, 18s))
      << describe(recorder);
  recorder.stop();
  std::uint64_t recorded = recorder.frames();
  EXPECT_GT(viewer.frames(), 0u);

  FileSummary fs = demux(rec.output);
  ASSERT_EQ(fs.error, "");
  const char* video_caps = GetParam() == VideoCodec::vp8 ? "video/x-vp8" : "video/x-h264";
  std::string streams;
  for (const auto& [name, n] : fs.buffers) streams += name + "=" + std::to_string(n) + " ";
  ASSERT_EQ(fs.buffers.count(video_caps), 1u) << streams;
  ASSERT_EQ(fs.buffers.count("audio/x-opus"), 1u) << streams;
  // Frames still queued when the recording stopped may be missing; none may be invented.
  EXPECT_LE(fs.buffers[video_caps], recorded);
  EXPECT_GE(fs.buffers[video_caps], recorded * 8 / 10) << "recorded " << recorded;
  EXPECT_GT(fs.buffers["audio/x-opus"], 20u);
  EXPECT_FALSE(viewer.ended());
}

TEST_P(MediaPipeline, JoinAndLeaveDoNotDisturbOtherWatchers) {
  auto bsig = hub_.broadcaster();
  Broadcaster b(small_broadcast(GetParam()), *bsig);
  b.start();
  auto sa = hub_.watcher("steady");
  Watcher steady(null_watch(), *sa);
  steady.start();
  ASSERT_TRUE(wait_for([&] { return steady.frames() > 15; }, 15s)) << describe(steady);

  auto sb = hub_.watcher("visitor");
  auto visitor = std::make_unique<Watcher>(null_watch(), *sb);
  visitor->start();
  ASSERT_TRUE(wait_for([&] { return visitor->frames() > 15; }, 15s)) << describe(*visitor);
  EXPECT_EQ(b.sessions().size(), 2u);

  visitor->stop();
  ASSERT_TRUE(wait_for([&] { return b.sessions().size() == 1; }, 5s));
  visitor.reset();
  sb.reset();
  // The steady watcher keeps decoding after the other left: 2 s at 15 fps is 30 frames.
  std::uint64_t before = steady.frames();
  wait_for([] { return false; }, 2s);
  EXPECT_GE(steady.frames() - before, 15u) << describe(steady);
  EXPECT_FALSE(steady.ended());

  // And a newcomer after that still gets a picture.
  auto sc = hub_.watcher("late");
  Watcher late(null_watch(), *sc);
  late.start();
  ASSERT_TRUE(wait_for([&] { return late.frames() > 10; }, 15s)) << describe(late);
  std::uint64_t mid = steady.frames();
  ASSERT_TRUE(wait_for([&] { return steady.frames() > mid + 10; }, 5s)) << describe(steady);
}

TEST_P(MediaPipeline, WatchersEndWhenTheBroadcasterStops) {
  auto bsig = hub_.broadcaster();
  Broadcaster b(small_broadcast(GetParam()), *bsig);
  b.start();
  auto s1 = hub_.watcher("alice");
  Watcher w(null_watch(), *s1);
  std::optional<WatchEnd> why;
  w.set_on_end([&](WatchEnd e, const std::string&) { why = e; });
  w.start();
  ASSERT_TRUE(wait_for([&] { return w.frames() > 5; }, 15s)) << describe(w);
  b.stop();
  EXPECT_FALSE(b.running());
  ASSERT_TRUE(wait_for([&] { return why.has_value(); }, 5s));
  EXPECT_EQ(*why, WatchEnd::broadcaster_ended);
  EXPECT_TRUE(w.ended());
  EXPECT_EQ(w.stats().state, "ended");
}

TEST_P(MediaPipeline, LossLowersTheEncoderBitrate) {
  BroadcastOptions o = small_broadcast(GetParam());
  o.bitrate_kbps = 800;
  o.simulate_loss = 0.25;
  auto bsig = hub_.broadcaster();
  Broadcaster b(o, *bsig);
  b.start();
  auto s1 = hub_.watcher("lossy");
  Watcher w(null_watch(), *s1);
  w.start();
  ASSERT_TRUE(wait_for([&] { return b.stats().worst_loss > 0.1 && b.stats().target_kbps < 700; }, 15s))
      << to_text(b.stats()) << " | " << describe(w);
  EXPECT_GE(b.stats().target_kbps, o.min_bitrate_kbps);
  EXPECT_GT(w.stats().packets_lost, 0) << describe(w);
}

// Keyframes only when asked: the encoder's own downstream force-key-unit after each forced
// keyframe once counted as a new request, which kept making a keyframe every gap (2/s) forever.
TEST_P(MediaPipeline, KeyframesAreMadeOnlyWhenAsked) {
  auto bsig = hub_.broadcaster();
  BroadcastOptions bo = small_broadcast(GetParam());
  bo.keyframe_interval_s = 10;  // periodic keyframes out of the way
  Broadcaster b(bo, *bsig);
  b.start();
  auto s1 = hub_.watcher("alice");
  Watcher w1(null_watch(), *s1);
  w1.start();
  ASSERT_TRUE(wait_for([&] { return w1.frames() > 15; }, 18s)) << describe(w1);
  const auto asked = b.stats().keyframes_requested;
  const auto frames = w1.frames();
  ASSERT_TRUE(wait_for([&] { return w1.frames() > frames + 45; }, 15s)) << describe(w1);
  // Three seconds of playback on loopback: a stray request at most, not one every 500 ms.
  EXPECT_LE(b.stats().keyframes_requested, asked + 2) << to_text(b.stats());
}

INSTANTIATE_TEST_SUITE_P(Media, MediaPipeline, ::testing::Values(VideoCodec::vp8, VideoCodec::h264),
                         [](const auto& info) { return std::string(to_string(info.param)); });

// ---- sources and options ----

TEST(MediaSources, BroadcastsAFileAndEndsWithIt) {
  ensure_gst_init();
  auto dir = std::filesystem::temp_directory_path() / ("p2p-media-src-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string file = (dir / "clip.webm").string();
  // The watcher connects while the file plays.
  // 6 s of 15 fps video with sound, made here so the test needs no fixture; long enough to
  // outlast a first connection slowed by DTLS key generation on a busy machine.
  std::string launch = "videotestsrc num-buffers=90 ! video/x-raw,width=320,height=240,framerate=15/1 ! "
                       "vp8enc deadline=1 ! webmmux name=m ! filesink location=\"" + file + "\" "
                       "audiotestsrc num-buffers=280 ! opusenc ! m.";
  GstElement* maker = gst_parse_launch(launch.c_str(), nullptr);
  ASSERT_NE(maker, nullptr);
  gst_element_set_state(maker, GST_STATE_PLAYING);
  GstBus* bus = gst_element_get_bus(maker);
  GstMessage* done = gst_bus_timed_pop_filtered(bus, 20 * GST_SECOND, GstMessageType(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(GST_MESSAGE_TYPE(done), GST_MESSAGE_EOS);
  gst_message_unref(done);
  gst_object_unref(bus);
  gst_element_set_state(maker, GST_STATE_NULL);
  gst_object_unref(maker);

  LoopbackHub hub;
  BroadcastOptions o = small_broadcast(VideoCodec::vp8);
  o.source = "file:" + file;
  auto bsig = hub.broadcaster();
  Broadcaster b(o, *bsig);
  bool eos = false;
  b.set_on_eos([&] { eos = true; });
  b.start();
  auto s1 = hub.watcher("alice");
  Watcher w(null_watch(), *s1);
  std::optional<WatchEnd> why;
  w.set_on_end([&](WatchEnd e, const std::string&) { why = e; });
  w.start();
  // Paced at real time (clocksync): the clip takes about 6 s, not a burst.
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_for([&] { return eos; }, 20s)) << describe(w);
  EXPECT_GT(std::chrono::steady_clock::now() - t0, 4s);
  EXPECT_GT(w.frames(), 5u) << describe(w);
  EXPECT_FALSE(b.running());
  ASSERT_TRUE(wait_for([&] { return why.has_value(); }, 5s));
  EXPECT_EQ(*why, WatchEnd::broadcaster_ended);
  std::filesystem::remove_all(dir);
}

TEST(MediaSources, RefusesBadSourcesAndSinks) {
  ensure_gst_init();
  LoopbackHub hub;
  auto bsig = hub.broadcaster();
  BroadcastOptions o = small_broadcast(VideoCodec::vp8);
  o.source = "pipeline:'nosuchelement_p2p ! videoconvert'";
  Broadcaster b(o, *bsig);
  EXPECT_THROW(b.start(), UsageError);
  EXPECT_FALSE(b.running());

  o.source = "v4l2:/dev/p2p-no-such-camera";
  auto bsig2 = hub.broadcaster();
  Broadcaster cam(o, *bsig2);
  EXPECT_THROW(cam.start(), RuntimeError);

  const char* display = std::getenv("DISPLAY");
  std::string saved = display != nullptr ? display : "";
  unsetenv("DISPLAY");
  const char* wayland = std::getenv("WAYLAND_DISPLAY");
  std::string saved_w = wayland != nullptr ? wayland : "";
  unsetenv("WAYLAND_DISPLAY");
  WatchOptions wo = null_watch();
  wo.sink = WatchSink::display;
  auto ws = hub.watcher("x");
  EXPECT_THROW(Watcher(wo, *ws), UsageError);
  if (!saved.empty()) setenv("DISPLAY", saved.c_str(), 1);
  if (!saved_w.empty()) setenv("WAYLAND_DISPLAY", saved_w.c_str(), 1);
}

// ---- offers made by someone else ----

// Plays the broadcaster's role by hand over the hub: sends a fixed offer, keeps the answer.
struct HandOfferer {
  std::unique_ptr<Signaller> sig;
  std::string offer;
  std::optional<Sdp> answer;
  std::string session;
  HandOfferer(LoopbackHub& hub, std::string text) : sig(hub.broadcaster()), offer(std::move(text)) {
    SignallerEvents e;
    e.session_requested = [this](const std::string& s, const std::string&) {
      session = s;
      sig->send_sdp(s, Sdp{SdpType::offer, offer});
    };
    e.remote_sdp = [this](const std::string&, const Sdp& sdp) { answer = sdp; };
    sig->set_events(e);
    sig->start();
  }
};

// A Chrome-like offer: camera and mic live, an inactive screen-share pair, a sendonly
// transceiver with no track yet, AV1/VP9/red/rtx in the lists.
std::string browser_offer() {
  std::string common =
      "c=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
      "a=fingerprint:sha-256 "
      "3A:6C:12:4B:35:94:8C:1E:53:5A:E9:1F:4C:49:9F:5E:27:4D:65:4E:1A:0C:8A:74:40:B2:2A:C1:93:1D:1C:7E\r\n"
      "a=setup:actpass\r\na=rtcp-mux\r\n";
  return "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
         "a=group:BUNDLE 0 1 2 3 4\r\na=msid-semantic: WMS s\r\n"
         "m=audio 9 UDP/TLS/RTP/SAVPF 63 111\r\n" + common +
         "a=mid:0\r\na=sendonly\r\na=msid:s mic\r\na=rtpmap:63 red/48000/2\r\na=rtpmap:111 opus/48000/2\r\n"
         "a=fmtp:111 minptime=10;useinbandfec=1\r\na=ssrc:1001 cname:x\r\n"
         "m=video 9 UDP/TLS/RTP/SAVPF 45 98 99 96 97 102\r\n" + common +
         "a=mid:1\r\na=sendonly\r\na=msid:s cam\r\na=rtpmap:45 AV1/90000\r\na=rtpmap:98 VP9/90000\r\n"
         "a=rtpmap:99 rtx/90000\r\na=fmtp:99 apt=98\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\n"
         "a=rtcp-fb:96 nack pli\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n"
         "a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;"
         "profile-level-id=42e01f\r\na=ssrc-group:FID 2001 2002\r\na=ssrc:2001 cname:x\r\na=ssrc:2002 cname:x\r\n"
         "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" + common +
         "a=mid:2\r\na=inactive\r\na=rtpmap:111 opus/48000/2\r\n"
         "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n" + common +
         "a=mid:3\r\na=inactive\r\na=rtpmap:96 VP8/90000\r\n"
         "m=video 9 UDP/TLS/RTP/SAVPF 96 45\r\n" + common +
         "a=mid:4\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:45 AV1/90000\r\n";
}

TEST(MediaWatcherOffer, AnswersBrowserOffersWithOnlyWhatItCanPlay) {
  ensure_gst_init();
  LoopbackHub hub;
  HandOfferer offerer(hub, browser_offer());
  auto ws = hub.watcher("cli");
  Watcher w(null_watch(), *ws);
  w.start();
  ASSERT_TRUE(wait_for([&] { return offerer.answer.has_value(); }, 10s));
  EXPECT_EQ(offerer.answer->type, SdpType::answer);
  auto m = summarize_offer(offerer.answer->text);  // the parser works on answers too
  ASSERT_EQ(m.size(), 5u) << offerer.answer->text;
  EXPECT_EQ(m[0].kind, "audio");
  EXPECT_EQ(m[0].direction, "recvonly");
  EXPECT_EQ(m[0].codecs, (std::vector<std::string>{"OPUS"})) << offerer.answer->text;
  EXPECT_EQ(m[1].kind, "video");
  EXPECT_EQ(m[1].direction, "recvonly");
  ASSERT_FALSE(m[1].codecs.empty());
  EXPECT_EQ(m[1].codecs.front(), "VP8") << offerer.answer->text;  // our preference, not the offer's
  for (const auto& c : m[1].codecs) {
    EXPECT_TRUE(c == "VP8" || c == "H264" || c == "VP9" || c == "RTX") << c;
  }
  EXPECT_EQ(m[2].direction, "inactive");
  EXPECT_EQ(m[3].direction, "inactive");
  EXPECT_EQ(m[4].direction, "recvonly");  // no track yet, but it may start sending any time
  EXPECT_EQ(m[4].codecs, (std::vector<std::string>{"VP8"}));
  EXPECT_FALSE(w.ended());
}

TEST(MediaWatcherOffer, RefusesAnOfferThatIsNotSdp) {
  ensure_gst_init();
  LoopbackHub hub;
  HandOfferer offerer(hub, "hello");
  auto ws = hub.watcher("cli");
  Watcher w(null_watch(), *ws);
  std::optional<std::string> message;
  w.set_on_end([&](WatchEnd e, const std::string& m) {
    EXPECT_EQ(e, WatchEnd::error);
    message = m;
  });
  w.start();
  ASSERT_TRUE(wait_for([&] { return message.has_value(); }, 5s));
  EXPECT_NE(message->find("not valid SDP"), std::string::npos) << *message;
}

// A browser-like broadcaster made of a plain webrtcbin: live camera and mic, then an unused
// (inactive) screen-share pair. webrtcbin 1.22 as the offerer asserts (trans->stream) now and
// then when its BUNDLE-tag m-line is inactive or a sendonly transceiver has no pad; the
// hand-made offer above covers those shapes on our side.
class ForeignOfferer {
 public:
  explicit ForeignOfferer(LoopbackHub& hub) : sig_(hub.broadcaster()), alive_(std::make_shared<int>(0)) {
    pipe_ = gst_pipeline_new("foreign");
    webrtc_ = make_webrtcbin(IceOptions{}, "foreign-webrtc");
    gst_bin_add(GST_BIN(pipe_), webrtc_);
    add_source("videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=15/1 ! "
               "vp8enc deadline=1 cpu-used=8 keyframe-max-dist=15 ! rtpvp8pay pt=96 ! queue");
    add_source("audiotestsrc is-live=true ! opusenc ! rtpopuspay pt=111 ! queue");
    add_transceiver(GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_INACTIVE,
                    "application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,payload=111");
    add_transceiver(GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_INACTIVE,
                    "application/x-rtp,media=video,encoding-name=VP8,clock-rate=90000,payload=96");
    g_signal_connect(webrtc_, "on-ice-candidate", G_CALLBACK(+[](GstElement*, guint mline, gchar* c, gpointer d) {
      auto* self = static_cast<ForeignOfferer*>(d);
      std::string cand = c;
      std::weak_ptr<int> alive = self->alive_;
      post(g_main_context_default(), [self, alive, cand, mline] {
        if (!alive.expired()) self->sig_->add_ice(self->session_, cand, mline);
      });
    }), this);
    // Like the Broadcaster: offer once webrtcbin says it is ready to negotiate.
    g_signal_connect(webrtc_, "on-negotiation-needed", G_CALLBACK(+[](GstElement*, gpointer d) {
      auto* self = static_cast<ForeignOfferer*>(d);
      std::weak_ptr<int> alive = self->alive_;
      post(g_main_context_default(), [self, alive] {
        if (alive.expired()) return;
        self->negotiation_needed_ = true;
        self->maybe_offer();
      });
    }), this);
    SignallerEvents e;
    e.session_requested = [this](const std::string& s, const std::string&) {
      session_ = s;
      maybe_offer();
    };
    e.remote_sdp = [this](const std::string&, const Sdp& sdp) {
      answer_ = sdp.text;
      SessionDescription d = parse_sdp(sdp);
      g_signal_emit_by_name(webrtc_, "set-remote-description", d.get(), nullptr);
    };
    e.remote_ice = [this](const std::string&, const std::string& c, unsigned m) {
      g_signal_emit_by_name(webrtc_, "add-ice-candidate", m, c.c_str());
    };
    sig_->set_events(e);
    gst_element_set_state(pipe_, GST_STATE_PLAYING);
    sig_->start();
  }
  ~ForeignOfferer() {
    sig_->stop();
    gst_element_set_state(pipe_, GST_STATE_NULL);
    gst_object_unref(pipe_);
  }
  const std::string& offer_text() const { return offer_; }
  const std::string& answer_text() const { return answer_; }

 private:
  void add_transceiver(GstWebRTCRTPTransceiverDirection dir, const char* caps_text) {
    GstCaps* caps = gst_caps_from_string(caps_text);
    GstWebRTCRTPTransceiver* t = nullptr;
    g_signal_emit_by_name(webrtc_, "add-transceiver", dir, caps, &t);
    gst_caps_unref(caps);
    if (t != nullptr) gst_object_unref(t);
  }

  void add_source(const char* launch) {
    GstElement* bin = parse_bin(launch, true);
    gst_bin_add(GST_BIN(pipe_), bin);
    GstPad* src = gst_element_get_static_pad(bin, "src");
    GstPad* sink = gst_element_request_pad_simple(webrtc_, "sink_%u");
    GstWebRTCRTPTransceiver* t = nullptr;
    g_object_get(sink, "transceiver", &t, nullptr);
    g_object_set(t, "direction", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY, nullptr);
    gst_object_unref(t);
    link_pads(src, sink);
    gst_object_unref(src);
    gst_object_unref(sink);
  }

  void maybe_offer() {
    if (session_.empty() || !negotiation_needed_ || offered_) return;
    offered_ = true;
    offer();
  }

  void offer() {
    std::weak_ptr<int> alive = alive_;
    GstPromise* p = make_promise([this, alive](const PromiseReply& r) {
      GstWebRTCSessionDescription* o = nullptr;
      if (r.reply != nullptr) gst_structure_get(r.reply, "offer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &o, nullptr);
      SessionDescription d(o, SdpDeleter{});
      post(g_main_context_default(), [this, alive, d] {
        if (!d || alive.expired()) return;
        offer_ = sdp_text(d.get());
        sig_->send_sdp(session_, Sdp{SdpType::offer, offer_});
        g_signal_emit_by_name(webrtc_, "set-local-description", d.get(), nullptr);
      });
    });
    g_signal_emit_by_name(webrtc_, "create-offer", nullptr, p);
  }

  std::unique_ptr<Signaller> sig_;
  std::shared_ptr<int> alive_;  // posted work checks it: the offerer may be gone by then
  GstElement* pipe_ = nullptr;
  GstElement* webrtc_ = nullptr;
  std::string session_, offer_, answer_;
  bool negotiation_needed_ = false;
  bool offered_ = false;
};

TEST(MediaWatcherOffer, PlaysTheLiveTracksOfAnOfferWithExtraTransceivers) {
  ensure_gst_init();
  LoopbackHub hub;
  ForeignOfferer offerer(hub);
  auto ws = hub.watcher("cli");
  Watcher w(null_watch(), *ws);
  w.start();
  ASSERT_TRUE(wait_for([&] { return w.frames() > 20 && w.audio_buffers() > 20; }, 18s))
      << describe(w) << "\n" << offerer.offer_text();
  auto offered = summarize_offer(offerer.offer_text());
  ASSERT_EQ(offered.size(), 4u) << offerer.offer_text();
  EXPECT_EQ(offered[0].kind, "video");
  EXPECT_EQ(offered[1].kind, "audio");
  EXPECT_EQ(offered[2].direction, "inactive");
  EXPECT_EQ(offered[3].direction, "inactive");
  auto answered = summarize_offer(offerer.answer_text());
  ASSERT_EQ(answered.size(), 4u) << offerer.answer_text();
  EXPECT_EQ(answered[0].direction, "recvonly");
  EXPECT_EQ(answered[1].direction, "recvonly");
  EXPECT_EQ(answered[2].direction, "inactive");
  EXPECT_EQ(answered[3].direction, "inactive");
  EXPECT_FALSE(w.ended());
}

}  // namespace
}  // namespace p2p::media
