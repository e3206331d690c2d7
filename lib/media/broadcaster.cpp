// media/broadcaster: source -> encoder -> payloader -> tee, and one gated webrtcbin branch per
// watcher session, driven from the main context; webrtcbin's threads only post work to it.
#include "media/broadcaster.hpp"

#include <gst/video/video.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include "media/dtls_key.hpp"
#include "media/gst_util.hpp"
#include "media/webrtc_util.hpp"
#include "util/error.hpp"

namespace p2p::media {
namespace {

constexpr int kVideoPt = 96;
constexpr int kH264Pt = 102;
constexpr int kOpusPt = 111;
// Keyframes at most this often: with loss, every watcher's depayloader asks for one per gap,
// and a keyframe per request would multiply the bitrate exactly when the network is worst.
constexpr std::int64_t kMinKeyframeGapUs = 500 * 1000;
// A watcher branch's gate (see Impl::gate): nothing passes, audio passes and video waits for a
// keyframe, everything passes.
constexpr int kGateClosed = 0;
constexpr int kGateKeyframe = 1;
constexpr int kGateOpen = 2;

// Quotes a property value for gst_parse_launch.
std::string launch_quoted(const std::string& v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string uri_for(const SourceSpec& src) {
  if (src.kind == SourceSpec::Kind::uri) return src.arg;
  GError* err = nullptr;
  gchar* uri = gst_filename_to_uri(src.arg.c_str(), &err);
  if (uri == nullptr) {
    std::string msg = err != nullptr ? err->message : "bad path";
    g_clear_error(&err);
    throw UsageError("--source file:" + src.arg + ": " + msg);
  }
  std::string out = uri;
  g_free(uri);
  return out;
}

// The launch text up to raw video ("... ! ") and up to raw audio, per source kind. Decoded
// sources are paced by clocksync: webrtcbin's sinks do not sync, so a file would be pushed
// as fast as it decodes.
struct SourceLaunch {
  std::string video;
  std::string audio;
};

SourceLaunch source_launch(const BroadcastOptions& o) {
  SourceSpec src = parse_source(o.source);
  switch (src.kind) {
    case SourceSpec::Kind::test:
      return {"videotestsrc is-live=true pattern=smpte horizontal-speed=2",
              "audiotestsrc is-live=true wave=sine freq=440 volume=0.05"};
    case SourceSpec::Kind::v4l2:
      return {"v4l2src device=" + launch_quoted(src.arg), "audiotestsrc is-live=true wave=silence"};
    case SourceSpec::Kind::pipeline:
      return {src.arg, "audiotestsrc is-live=true wave=silence"};
    case SourceSpec::Kind::file:
    case SourceSpec::Kind::uri:
      return {"uridecodebin uri=" + launch_quoted(uri_for(src)) + " name=src src. ! queue ! clocksync",
              "src. ! queue ! clocksync"};
  }
  return {};
}

std::string video_encoder_launch(const BroadcastOptions& o) {
  unsigned key_int = o.keyframe_interval_s * o.fps;
  // One encoder thread: libvpx's row-sync between threads spin-waits (pause loops), and when the
  // machine is busy (many watchers' branches) the spinning thread starved its partner: the sender
  // fell to 4-10 fps at 64 watchers. vp8 at cpu-used=8 and 640x480@30 needs ~15% of one core.
  if (o.video == VideoCodec::vp8) {
    return "vp8enc name=venc deadline=1 cpu-used=8 end-usage=cbr lag-in-frames=0 threads=1 "
           "target-bitrate=" + std::to_string(o.bitrate_kbps * 1000) +
           " keyframe-max-dist=" + std::to_string(key_int) +
           " ! rtpvp8pay name=vpay mtu=1200 picture-id-mode=15-bit pt=" + std::to_string(kVideoPt);
  }
  // One thread, so one slice per frame: ultrafast at 640x480@30 costs ~5% of a core, and a
  // second thread only adds a slice. (Multi-slice frames once lost their top slice: that was
  // rtph264pay's SPS/PPS insertion, see h264_payload_launch.)
  return "x264enc name=venc tune=zerolatency speed-preset=ultrafast bframes=0 threads=1 "
         "bitrate=" + std::to_string(o.bitrate_kbps) + " key-int-max=" + std::to_string(key_int) +
         " ! video/x-h264,profile=constrained-baseline ! " + h264_payload_launch("vpay", kH264Pt);
}

// The watchers' branches are spread over a few worker threads, one per CPU: tee -> queue ->
// tee NAMEk, and each branch hangs off one NAMEk. A queue per watcher cost a thread wake-up
// per packet per watcher (a fifth of the sender's CPU at 64 watchers); pushing to every
// watcher from the encoder's thread left the other CPUs idle and stalled the encoder.
int fanout_worker_count() {
  static const int n = static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 4u));
  return n;
}

std::string fanout_workers(const std::string& tee) {
  std::string out;
  for (int k = 0; k < fanout_worker_count(); ++k) {
    std::string n = std::to_string(k);
    out += "  " + tee + ". ! queue name=" + tee + "q" + n +
           " leaky=downstream max-size-buffers=0 max-size-bytes=0 max-size-time=500000000 ! tee name=" + tee + n +
           " allow-not-linked=true";
  }
  return out;
}

std::string pipeline_launch(const BroadcastOptions& o) {
  SourceLaunch src = source_launch(o);
  std::string video = src.video +
                      " ! videoconvert ! videoscale ! videorate ! video/x-raw,format=I420,width=" +
                      std::to_string(o.size.width) + ",height=" + std::to_string(o.size.height) +
                      ",framerate=" + std::to_string(o.fps) + "/1,pixel-aspect-ratio=1/1"
                      " ! queue name=encqueue max-size-buffers=3 max-size-bytes=0 max-size-time=0 "
                      "leaky=downstream ! " + video_encoder_launch(o) +
                      " ! tee name=vtee allow-not-linked=true" + fanout_workers("vtee");
  if (!o.audio) return video;
  return video + "  " + src.audio +
         " ! audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=2"
         " ! opusenc name=aenc bitrate=64000 frame-size=20 ! rtpopuspay name=apay pt=" +
         std::to_string(kOpusPt) + " ! tee name=atee allow-not-linked=true" + fanout_workers("atee");
}

// What each watcher's transceiver offers; the feedback fields become a=rtcp-fb lines.
// The payloader's SSRC goes into the caps so the offer carries a=ssrc and the RTX FID group
// (see send_preferences): without them the watcher never asks for retransmissions.
GstCaps* video_preferences(VideoCodec codec, std::uint32_t ssrc) {
  const char* fb = ",rtcp-fb-nack=(boolean)true,rtcp-fb-nack-pli=(boolean)true,rtcp-fb-ccm-fir=(boolean)true";
  std::string caps = codec == VideoCodec::vp8
                         ? "application/x-rtp,media=video,encoding-name=VP8,clock-rate=90000,payload=" +
                               std::to_string(kVideoPt)
                         : "application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,"
                           "packetization-mode=(string)1,payload=" + std::to_string(kH264Pt);
  return gst_caps_from_string((caps + fb + ",ssrc=(uint)" + std::to_string(ssrc)).c_str());
}

GstCaps* audio_preferences() {
  return gst_caps_from_string(("application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,"
                               "encoding-params=(string)2,payload=" + std::to_string(kOpusPt)).c_str());
}

GstElement* by_name(GstElement* bin, const char* name) {
  GstElement* e = gst_bin_get_by_name(GST_BIN(bin), name);
  if (e == nullptr) throw RuntimeError(std::string("internal: pipeline has no element ") + name);
  gst_object_unref(e);  // the pipeline keeps it alive
  return e;
}

std::string error_text(GstMessage* msg) {
  GError* err = nullptr;
  gchar* dbg = nullptr;
  gst_message_parse_error(msg, &err, &dbg);
  std::string out = std::string(GST_OBJECT_NAME(GST_MESSAGE_SRC(msg))) + ": " +
                    (err != nullptr ? err->message : "unknown error");
  g_clear_error(&err);
  g_free(dbg);
  return out;
}

}  // namespace

struct Broadcaster::Impl : std::enable_shared_from_this<Broadcaster::Impl> {
  struct Peer {
    std::string session;
    std::string name;
    unsigned serial = 0;
    GstElement* bin = nullptr;  // owned by the pipeline while attached
    GstElement* webrtc = nullptr;
    GstPad* vtee_pad = nullptr;  // our references to the worker tees' request pads
    GstPad* atee_pad = nullptr;
    std::size_t worker = 0;
    bool offer_made = false;
    bool connected = false;
    // Shared with the branch's gate probes (see gate()): kGateClosed until ICE and DTLS are up.
    std::shared_ptr<std::atomic<int>> gate = std::make_shared<std::atomic<int>>(kGateClosed);
    bool have_stats = false;
    RtpTotals last{};
    double loss = 0;
    std::optional<double> rtt_ms;
  };
  using PeerPtr = std::shared_ptr<Peer>;

  // A branch's gate probe: its peer's state, and which medium it passes. The probe runs only
  // while the pipeline, and so this Impl, exists.
  struct Gate {
    std::shared_ptr<std::atomic<int>> peer;
    Impl* impl;
    bool video;
    GstClockTime dropped_pts = GST_CLOCK_TIME_NONE;  // the last frame dropped (streaming thread)
  };

  // Handed to webrtcbin signal handlers: which peer, without keeping anything alive.
  struct Tag {
    std::weak_ptr<Impl> impl;
    std::string session;
    unsigned serial;
  };

  BroadcastOptions opts;
  Signaller& sig;
  GMainContext* ctx;
  GstElement* pipeline = nullptr;
  std::vector<GstElement*> vtees, atees;  // the fan-out workers' tees (see fanout_workers)
  GstElement* venc = nullptr;
  GstElement* vpay = nullptr;
  std::uint32_t video_ssrc = 0;  // fixed, so each watcher's offer can name it
  GSource* bus_source = nullptr;
  std::string launch;
  std::map<std::string, PeerPtr> peers;
  unsigned serials = 0;
  Timer stats_timer;
  bool running = false;
  std::atomic<std::uint64_t> frames{0}, bytes{0}, fku_events{0};
  std::atomic<std::int64_t> last_keyframe_us{-kMinKeyframeGapUs};
  std::atomic<bool> keyframe_pending{false};
  std::atomic<bool> keyframe_now{false};  // our own request for a joining watcher: never held
  std::atomic<GstClockTime> last_keyframe_pts{GST_CLOCK_TIME_NONE};  // the encoder's latest keyframe
  std::uint64_t tick_frames = 0, tick_bytes = 0;
  std::int64_t tick_us = 0, start_us = 0;
  unsigned target_kbps = 0;
  BroadcastStats current{};
  std::thread warmer;
  std::function<void(const std::string&)> on_error;
  std::function<void()> on_eos;
  std::function<void(const BroadcastStats&)> on_stats;
  std::function<void(const std::string&, const std::string&)> on_session;

  Impl(BroadcastOptions o, Signaller& s, GMainContext* c)
      : opts(std::move(o)), sig(s), ctx(c != nullptr ? c : g_main_context_default()) {
    opts.validate();
    target_kbps = opts.bitrate_kbps;
  }

  // Runs fn(impl) on the main context if the broadcaster still exists then.
  static void post_to(const std::weak_ptr<Impl>& weak, GMainContext* ctx, std::function<void(Impl&)> fn) {
    post(ctx, [weak, fn = std::move(fn)] {
      if (auto self = weak.lock()) fn(*self);
    });
  }

  PeerPtr find(const std::string& session, unsigned serial) {
    auto it = peers.find(session);
    if (it == peers.end() || it->second->serial != serial) return nullptr;
    return it->second;
  }

  // ---- the shared pipeline ----

  void build() {
    ensure_gst_init();
    launch = pipeline_launch(opts);
    GError* err = nullptr;
    pipeline = gst_parse_launch(launch.c_str(), &err);
    if (err != nullptr) {
      std::string msg = err->message;
      bool missing = g_error_matches(err, GST_PARSE_ERROR, GST_PARSE_ERROR_NO_SUCH_ELEMENT);
      g_clear_error(&err);
      if (pipeline != nullptr) gst_object_unref(pipeline);
      pipeline = nullptr;
      // Our own elements missing is an installation problem; anything else comes from --source.
      if (missing && parse_source(opts.source).kind != SourceSpec::Kind::pipeline) {
        throw RuntimeError("cannot build the broadcast pipeline: " + msg +
                           "; install the GStreamer plugins (scripts/install-deps.sh)");
      }
      throw UsageError("cannot build the broadcast pipeline from --source " + opts.source + ": " + msg);
    }
    gst_object_ref_sink(pipeline);
    for (int k = 0; k < fanout_worker_count(); ++k) {
      vtees.push_back(by_name(pipeline, ("vtee" + std::to_string(k)).c_str()));
      if (opts.audio) atees.push_back(by_name(pipeline, ("atee" + std::to_string(k)).c_str()));
    }
    venc = by_name(pipeline, "venc");
    vpay = by_name(pipeline, "vpay");
    video_ssrc = random_ssrc();
    g_object_set(vpay, "ssrc", guint(video_ssrc), nullptr);
    install_probes();
    GstBus* bus = gst_pipeline_get_bus(GST_PIPELINE(pipeline));
    bus_source = gst_bus_create_watch(bus);
    g_source_set_callback(bus_source, G_SOURCE_FUNC(&Impl::bus_message), this, nullptr);
    g_source_attach(bus_source, ctx);
    gst_object_unref(bus);
  }

  void install_probes() {
    GstPad* src = gst_element_get_static_pad(venc, "src");
    gst_pad_add_probe(src, GST_PAD_PROBE_TYPE_BUFFER, &Impl::count_frame, this, nullptr);
    gst_pad_add_probe(src, GstPadProbeType(GST_PAD_PROBE_TYPE_EVENT_UPSTREAM | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM),
                      &Impl::watch_events, new std::weak_ptr<Impl>(weak_from_this()),
                      [](gpointer d) { delete static_cast<std::weak_ptr<Impl>*>(d); });
    gst_object_unref(src);
    if (opts.before_encode) {
      GstPad* sink = gst_element_get_static_pad(venc, "sink");
      gst_pad_add_probe(sink, GST_PAD_PROBE_TYPE_BUFFER, &Impl::raw_frame, this, nullptr);
      gst_object_unref(sink);
    }
  }

  static GstPadProbeReturn count_frame(GstPad*, GstPadProbeInfo* info, gpointer d) {
    auto* self = static_cast<Impl*>(d);
    self->frames.fetch_add(1, std::memory_order_relaxed);
    GstBuffer* buf = GST_PAD_PROBE_INFO_BUFFER(info);
    if (!GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_DELTA_UNIT)) {
      self->last_keyframe_pts.store(GST_BUFFER_PTS(buf), std::memory_order_release);
    }
    self->bytes.fetch_add(gst_buffer_get_size(buf), std::memory_order_relaxed);
    return GST_PAD_PROBE_OK;
  }

  // Passes the PLI/FIR keyframe requests rtpsession turns into events at most every
  // kMinKeyframeGapUs; one that comes sooner is held and sent when the gap is over, so no
  // requester is forgotten. Ours for a joining watcher always pass. Also notices the end of a
  // file source.
  static GstPadProbeReturn watch_events(GstPad*, GstPadProbeInfo* info, gpointer d) {
    GstEvent* ev = GST_PAD_PROBE_INFO_EVENT(info);
    auto weak = *static_cast<std::weak_ptr<Impl>*>(d);
    // Only requests going up: the encoder announces each keyframe it made with a downstream
    // force-key-unit, and counting that as a request made a new keyframe every gap, forever.
    if (GST_EVENT_IS_UPSTREAM(ev) && gst_video_event_is_force_key_unit(ev)) {
      auto self = weak.lock();
      if (!self) return GST_PAD_PROBE_OK;
      std::int64_t now = monotonic_us();
      std::int64_t since = now - self->last_keyframe_us.load();
      if (since >= kMinKeyframeGapUs || self->keyframe_now.exchange(false)) {
        self->last_keyframe_us = now;
        self->fku_events.fetch_add(1, std::memory_order_relaxed);
        return GST_PAD_PROBE_OK;
      }
      if (!self->keyframe_pending.exchange(true)) self->send_keyframe_later(kMinKeyframeGapUs - since);
      return GST_PAD_PROBE_DROP;
    } else if (GST_EVENT_TYPE(ev) == GST_EVENT_EOS) {
      GMainContext* ctx = nullptr;
      if (auto self = weak.lock()) ctx = self->ctx;
      if (ctx != nullptr) post_to(weak, ctx, [](Impl& self) { self.source_ended(); });
    }
    return GST_PAD_PROBE_OK;
  }

  static GstPadProbeReturn raw_frame(GstPad* pad, GstPadProbeInfo* info, gpointer d) {
    auto* self = static_cast<Impl*>(d);
    GstCaps* caps = gst_pad_get_current_caps(pad);
    if (caps == nullptr) return GST_PAD_PROBE_OK;
    GstVideoInfo vinfo;
    bool ok = gst_video_info_from_caps(&vinfo, caps);
    gst_caps_unref(caps);
    if (!ok) return GST_PAD_PROBE_OK;
    GstBuffer* buf = gst_buffer_make_writable(GST_PAD_PROBE_INFO_BUFFER(info));
    GST_PAD_PROBE_INFO_DATA(info) = buf;
    GstVideoFrame frame;
    if (!gst_video_frame_map(&frame, &vinfo, buf, GST_MAP_READWRITE)) return GST_PAD_PROBE_OK;
    RawFrame raw{static_cast<std::uint8_t*>(GST_VIDEO_FRAME_PLANE_DATA(&frame, 0)),
                 GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 0), GST_VIDEO_FRAME_WIDTH(&frame),
                 GST_VIDEO_FRAME_HEIGHT(&frame)};
    self->opts.before_encode(raw);
    gst_video_frame_unmap(&frame);
    return GST_PAD_PROBE_OK;
  }

  void start() {
    if (running) return;
    if (!warmer.joinable()) warmer = std::thread(warm_dtls_certificate);
    build();
    start_us = tick_us = monotonic_us();
    if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
      std::string why = pop_error();
      teardown();
      throw RuntimeError("the broadcast pipeline did not start: " + why);
    }
    running = true;
    std::weak_ptr<Impl> weak = weak_from_this();
    stats_timer = Timer(ctx, opts.stats_interval_ms, repeat_while_alive(weak, &Impl::tick));
    SignallerEvents ev;
    ev.session_requested = while_alive(weak, &Impl::add_peer);
    ev.remote_sdp = while_alive(weak, &Impl::remote_sdp);
    ev.remote_ice = while_alive(weak, &Impl::remote_ice);
    ev.session_ended = [weak](const std::string& s) {
      if (auto self = weak.lock()) self->remove_peer(s, "ended");
    };
    ev.error = [weak](const std::string& msg) {
      if (auto self = weak.lock()) self->fatal("signalling: " + msg);
    };
    sig.set_events(std::move(ev));
    sig.start();
  }

  std::string pop_error() {
    GstBus* bus = gst_pipeline_get_bus(GST_PIPELINE(pipeline));
    GstMessage* msg = gst_bus_timed_pop_filtered(bus, GST_SECOND, GST_MESSAGE_ERROR);
    gst_object_unref(bus);
    if (msg == nullptr) return "state change failed";
    std::string out = error_text(msg);
    gst_message_unref(msg);
    return out;
  }

  void stop() {
    if (!running) {
      teardown();
      return;
    }
    running = false;
    stats_timer.cancel();
    sig.stop();
    teardown();
  }

  void teardown() {
    if (warmer.joinable()) warmer.join();
    stats_timer.cancel();
    if (bus_source != nullptr) {
      g_source_destroy(bus_source);
      g_source_unref(bus_source);
      bus_source = nullptr;
    }
    for (auto& [s, p] : peers) release_tee_pads(*p);
    peers.clear();
    if (pipeline != nullptr) {
      set_null_with_watchdog(pipeline, opts.shutdown_timeout_ms);
      gst_object_unref(pipeline);
      pipeline = nullptr;
    }
  }

  void fatal(const std::string& msg) {
    if (!running) return;
    stop();
    if (auto cb = on_error) cb(msg);
  }

  void source_ended() {
    if (!running) return;
    stop();
    if (auto cb = on_eos) cb();
  }

  static gboolean bus_message(GstBus*, GstMessage* msg, gpointer d) {
    static_cast<Impl*>(d)->on_bus(msg);
    return G_SOURCE_CONTINUE;
  }

  void on_bus(GstMessage* msg) {
    if (GST_MESSAGE_TYPE(msg) != GST_MESSAGE_ERROR) return;
    std::string text = error_text(msg);
    // An error inside one watcher's branch ends that session only.
    for (auto& [session, peer] : peers) {
      if (gst_object_has_as_ancestor(GST_MESSAGE_SRC(msg), GST_OBJECT(peer->bin))) {
        fail_peer(session, text);
        return;
      }
    }
    fatal(text);
  }

  // ---- per-watcher branches ----

  // Until the peer is connected webrtcbin blocks its RTP path: it would stall the tee (and with
  // a queue per branch, release up to 500 ms of stale frames ahead of the keyframe forced on
  // connect, which the decoder drops before asking for yet another keyframe). The gate drops
  // media until then, and video until the next keyframe starts; sticky events (caps) still pass.
  static GstPadProbeReturn gate(GstPad*, GstPadProbeInfo* info, gpointer d) {
    auto* g = static_cast<Gate*>(d);
    int state = g->peer->load(std::memory_order_acquire);
    if (state == kGateOpen || (state == kGateKeyframe && !g->video)) return GST_PAD_PROBE_OK;
    GstBuffer* first = (GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_BUFFER) != 0
                           ? GST_PAD_PROBE_INFO_BUFFER(info)
                           : gst_buffer_list_get(GST_PAD_PROBE_INFO_BUFFER_LIST(info), 0);
    GstClockTime pts = first != nullptr ? GST_BUFFER_PTS(first) : GST_CLOCK_TIME_NONE;
    // The payloader stamps every packet of a frame with its PTS. The first packet with the
    // latest keyframe's PTS starts that keyframe, unless an earlier one of it was dropped.
    if (state == kGateKeyframe && pts != GST_CLOCK_TIME_NONE && pts != g->dropped_pts &&
        pts == g->impl->last_keyframe_pts.load(std::memory_order_acquire)) {
      g->peer->store(kGateOpen, std::memory_order_release);
      return GST_PAD_PROBE_OK;
    }
    g->dropped_pts = pts;
    return GST_PAD_PROBE_DROP;
  }

  void add_gate(GstPad* sink, const PeerPtr& p, bool video) {
    gst_pad_add_probe(sink, GstPadProbeType(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST), &Impl::gate,
                      new Gate{p->gate, this, video}, [](gpointer d) { delete static_cast<Gate*>(d); });
  }

  // Drops every packet that takes the running count past the next multiple of 1/fraction.
  // Payloaders push buffer lists as well as buffers, so both are thinned.
  struct Loss {
    double fraction;
    std::uint64_t seen = 0;
    bool drop_next() {
      auto before = static_cast<std::uint64_t>(double(seen) * fraction);
      auto after = static_cast<std::uint64_t>(double(++seen) * fraction);
      return after > before;
    }
  };

  static GstPadProbeReturn thin_out(GstPad*, GstPadProbeInfo* info, gpointer d) {
    auto* loss = static_cast<Loss*>(d);
    if ((GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_BUFFER) != 0) {
      return loss->drop_next() ? GST_PAD_PROBE_DROP : GST_PAD_PROBE_OK;
    }
    GstBufferList* list = gst_buffer_list_make_writable(GST_PAD_PROBE_INFO_BUFFER_LIST(info));
    GST_PAD_PROBE_INFO_DATA(info) = list;
    guint n = gst_buffer_list_length(list);
    std::vector<bool> drop(n);
    for (guint i = 0; i < n; ++i) drop[i] = loss->drop_next();
    for (guint i = n; i-- > 0;) {
      if (drop[i]) gst_buffer_list_remove(list, i, 1);
    }
    return gst_buffer_list_length(list) == 0 ? GST_PAD_PROBE_DROP : GST_PAD_PROBE_OK;
  }

  static void add_loss(GstPad* pad, double fraction) {
    gst_pad_add_probe(pad, GstPadProbeType(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST),
                      &Impl::thin_out, new Loss{fraction}, [](gpointer d) { delete static_cast<Loss*>(d); });
  }

  // A new sendonly transceiver's sink pad becomes the bin's pad (ghost_name), with the gate
  // (and the simulated loss) on it. No queue of its own: its worker's thread pushes into it, and
  // nothing there blocks once the gate is open (nicesink drops rather than waits).
  // NACK/RTX on video only: Chrome refuses an offer whose audio m-line has an RTX FID group.
  void add_sender(const PeerPtr& p, GstCaps* prefs, const char* ghost_name) {
    bool video = std::string_view(ghost_name) == "video";
    GstPad* sink = gst_element_request_pad_simple(p->webrtc, "sink_%u");
    if (sink == nullptr) {
      gst_caps_unref(prefs);
      throw RuntimeError("webrtcbin refused a sink pad");
    }
    GstWebRTCRTPTransceiver* trans = nullptr;
    g_object_get(sink, "transceiver", &trans, nullptr);
    if (trans != nullptr) {
      g_object_set(trans, "direction", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY, "codec-preferences",
                   prefs, "do-nack", video ? TRUE : FALSE, nullptr);
      gst_object_unref(trans);
    }
    gst_caps_unref(prefs);
    add_gate(sink, p, video);
    if (video && opts.simulate_loss > 0) add_loss(sink, opts.simulate_loss);
    gst_element_add_pad(p->bin, gst_ghost_pad_new(ghost_name, sink));
    gst_object_unref(sink);
  }

  template <class F>
  void connect(GstElement* webrtc, const char* signal, F handler, const PeerPtr& p) {
    g_signal_connect_data(webrtc, signal, G_CALLBACK(handler), new Tag{weak_from_this(), p->session, p->serial},
                          [](gpointer d, GClosure*) { delete static_cast<Tag*>(d); }, GConnectFlags(0));
  }

  void add_peer(const std::string& session, const std::string& name) {
    if (!running || peers.count(session) != 0) return;
    auto p = std::make_shared<Peer>();
    p->session = session;
    p->name = name;
    p->serial = ++serials;
    try {
      build_peer(p);
    } catch (const Error& e) {
      if (p->bin != nullptr) {
        gst_element_set_state(p->bin, GST_STATE_NULL);
        if (GST_OBJECT_PARENT(p->bin) != nullptr) gst_bin_remove(GST_BIN(pipeline), p->bin);
        else gst_object_unref(p->bin);
      }
      release_tee_pads(*p);
      sig.end_session(session);
      notify_session(session, std::string("failed: ") + e.what());
      return;
    }
    notify_session(session, "requested");
  }

  void build_peer(const PeerPtr& p) {
    std::string n = std::to_string(p->serial);
    p->bin = gst_bin_new(("peer" + n).c_str());
    p->webrtc = make_webrtcbin(opts.ice, "webrtc" + n);
    gst_bin_add(GST_BIN(p->bin), p->webrtc);
    add_sender(p, video_preferences(opts.video, video_ssrc), "video");
    if (opts.audio) add_sender(p, audio_preferences(), "audio");
    connect(p->webrtc, "on-negotiation-needed", &Impl::on_negotiation_needed, p);
    connect(p->webrtc, "on-ice-candidate", &Impl::on_ice_candidate, p);
    connect(p->webrtc, "notify::connection-state", &Impl::on_connection_state, p);
    gst_bin_add(GST_BIN(pipeline), p->bin);
    peers[p->session] = p;
    if (!gst_element_sync_state_with_parent(p->bin)) throw RuntimeError("the watcher branch did not start");
    // Linked last, so no buffer reaches a webrtcbin before its transceivers are set up.
    std::size_t w = least_loaded_worker();
    p->worker = w;
    p->vtee_pad = link_tee_to(vtees[w], p->bin, "video", "a watcher branch");
    if (opts.audio) p->atee_pad = link_tee_to(atees[w], p->bin, "audio", "a watcher branch");
  }

  std::size_t least_loaded_worker() const {
    std::vector<int> load(vtees.size(), 0);
    for (const auto& [s, p] : peers) {
      if (p->vtee_pad != nullptr && p->worker < load.size()) ++load[p->worker];
    }
    return std::size_t(std::min_element(load.begin(), load.end()) - load.begin());
  }

  static void release_tee_pad(GstPad*& pad) {
    if (pad == nullptr) return;
    if (GstElement* tee = gst_pad_get_parent_element(pad)) {
      gst_element_release_request_pad(tee, pad);
      gst_object_unref(tee);
    }
    gst_object_unref(pad);
    pad = nullptr;
  }

  void release_tee_pads(Peer& p) {
    release_tee_pad(p.vtee_pad);
    release_tee_pad(p.atee_pad);
  }

  void notify_session(const std::string& session, const std::string& state) {
    if (auto cb = on_session) cb(session, state);
  }

  // ---- webrtcbin signals (its threads) -> main context ----

  static void on_negotiation_needed(GstElement*, gpointer d) {
    Tag t = *static_cast<Tag*>(d);
    if (auto self = t.impl.lock()) {
      post_to(t.impl, self->ctx, [t](Impl& impl) { impl.make_offer(t.session, t.serial); });
    }
  }

  static void on_ice_candidate(GstElement*, guint mline, gchar* candidate, gpointer d) {
    Tag t = *static_cast<Tag*>(d);
    std::string cand = candidate != nullptr ? candidate : "";
    if (auto self = t.impl.lock()) {
      post_to(t.impl, self->ctx, [t, cand, mline](Impl& impl) {
        if (impl.find(t.session, t.serial)) impl.sig.add_ice(t.session, cand, mline);
      });
    }
  }

  static void on_connection_state(GstElement* webrtc, GParamSpec*, gpointer d) {
    Tag t = *static_cast<Tag*>(d);
    GstWebRTCPeerConnectionState state{};
    g_object_get(webrtc, "connection-state", &state, nullptr);
    if (auto self = t.impl.lock()) {
      post_to(t.impl, self->ctx, [t, state](Impl& impl) { impl.connection_changed(t.session, t.serial, state); });
    }
  }

  // ---- main-context handlers ----

  void make_offer(const std::string& session, unsigned serial) {
    PeerPtr p = find(session, serial);
    if (!p || p->offer_made) return;  // webrtcbin may ask again when caps arrive: one offer only
    p->offer_made = true;
    std::weak_ptr<Impl> weak = weak_from_this();
    GMainContext* c = ctx;
    GstPromise* promise = make_promise([weak, c, session, serial](const PromiseReply& r) {
      std::string err = r.error();
      GstWebRTCSessionDescription* offer = nullptr;
      if (err.empty() && r.reply != nullptr) gst_structure_get(r.reply, "offer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &offer, nullptr);
      SessionDescription desc(offer, SdpDeleter{});
      post_to(weak, c, [session, serial, desc, err](Impl& impl) {
        impl.offer_created(session, serial, desc, err);
      });
    });
    g_signal_emit_by_name(p->webrtc, "create-offer", nullptr, promise);
  }

  void offer_created(const std::string& session, unsigned serial, const SessionDescription& offer,
                     const std::string& err) {
    PeerPtr p = find(session, serial);
    if (!p) return;
    if (!offer) {
      fail_peer(session, "could not create an offer: " + (err.empty() ? std::string("no offer") : err));
      return;
    }
    // The offer goes out before set-local-description starts gathering, or candidates would
    // overtake it.
    sig.send_sdp(session, Sdp{SdpType::offer, sdp_text(offer.get())});
    g_signal_emit_by_name(p->webrtc, "set-local-description", offer.get(), nullptr);
  }

  void remote_sdp(const std::string& session, const Sdp& sdp) {
    auto it = peers.find(session);
    if (it == peers.end()) return;
    PeerPtr p = it->second;
    if (sdp.type != SdpType::answer) {
      fail_peer(session, "the watcher sent an offer; a broadcaster only takes answers");
      return;
    }
    SessionDescription desc;
    try {
      desc = parse_sdp(sdp);
    } catch (const Error& e) {
      fail_peer(session, e.what());
      return;
    }
    std::weak_ptr<Impl> weak = weak_from_this();
    GMainContext* c = ctx;
    unsigned serial = p->serial;
    GstPromise* promise = make_promise([weak, c, session, serial](const PromiseReply& r) {
      std::string err = r.error();
      if (err.empty()) return;
      post_to(weak, c, [session, serial, err](Impl& impl) {
        if (impl.find(session, serial)) impl.fail_peer(session, "the answer was refused: " + err);
      });
    });
    g_signal_emit_by_name(p->webrtc, "set-remote-description", desc.get(), promise);
  }

  void remote_ice(const std::string& session, const std::string& candidate, unsigned mline) {
    auto it = peers.find(session);
    if (it == peers.end() || candidate.empty()) return;
    g_signal_emit_by_name(it->second->webrtc, "add-ice-candidate", mline, candidate.c_str());
  }

  void connection_changed(const std::string& session, unsigned serial, GstWebRTCPeerConnectionState state) {
    PeerPtr p = find(session, serial);
    if (!p) return;
    if (state == GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED && !p->connected) {
      p->connected = true;
      p->gate->store(kGateKeyframe, std::memory_order_release);
      // A new watcher needs a keyframe now, not at the next periodic one.
      force_key_unit(true);
      notify_session(session, "connected");
    } else if (state == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED) {
      fail_peer(session, "ICE/DTLS failed");
    }
  }

  // Any thread: one force-key-unit on the main context after delay_us.
  void send_keyframe_later(std::int64_t delay_us) {
    GSource* src = g_timeout_source_new(guint(delay_us / 1000 + 1));
    auto* weak = new std::weak_ptr<Impl>(weak_from_this());
    g_source_set_callback(
        src,
        [](gpointer d) {
          if (auto self = static_cast<std::weak_ptr<Impl>*>(d)->lock()) {
            self->keyframe_pending = false;
            self->force_key_unit();
          }
          return gboolean(G_SOURCE_REMOVE);
        },
        weak, [](gpointer d) { delete static_cast<std::weak_ptr<Impl>*>(d); });
    g_source_attach(src, ctx);
    g_source_unref(src);
  }

  void force_key_unit(bool for_join = false) {
    if (vpay == nullptr || !running) return;
    if (for_join) keyframe_now = true;
    GstEvent* ev = gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE, TRUE, 0);
    gst_element_send_event(vpay, ev);
  }

  void fail_peer(const std::string& session, const std::string& why) {
    if (peers.count(session) == 0) return;
    sig.end_session(session);
    remove_peer(session, "failed: " + why);
  }

  // Unlinks the branch from the tees when they are between buffers, then drops it on the main
  // context; the other branches never stop.
  struct Detach {
    std::weak_ptr<Impl> impl;
    GMainContext* ctx = nullptr;
    PeerPtr peer;
    std::atomic<int> left{0};

    void one_done() {
      if (--left > 0) return;
      post_to(impl, ctx, [peer = peer](Impl& self) { self.drop_branch(peer); });
    }
  };
  using DetachPtr = std::shared_ptr<Detach>;

  static GstPadProbeReturn unlink_when_idle(GstPad* tee_pad, GstPadProbeInfo*, gpointer d) {
    if (GstPad* peer = gst_pad_get_peer(tee_pad)) {
      gst_pad_unlink(tee_pad, peer);
      gst_object_unref(peer);
    }
    (*static_cast<DetachPtr*>(d))->one_done();
    return GST_PAD_PROBE_REMOVE;
  }

  void remove_peer(const std::string& session, const std::string& state) {
    auto it = peers.find(session);
    if (it == peers.end()) return;
    PeerPtr p = it->second;
    peers.erase(it);
    auto det = std::make_shared<Detach>();
    det->impl = weak_from_this();
    det->ctx = ctx;
    det->peer = p;
    det->left = 1 + (p->vtee_pad != nullptr) + (p->atee_pad != nullptr);
    for (GstPad* pad : {p->vtee_pad, p->atee_pad}) {
      if (pad == nullptr) continue;
      gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_IDLE, &Impl::unlink_when_idle, new DetachPtr(det),
                        [](gpointer d) { delete static_cast<DetachPtr*>(d); });
    }
    det->one_done();  // our own share, so a probe that fires at once cannot finish early
    notify_session(session, state);
  }

  void drop_branch(const PeerPtr& p) {
    if (pipeline == nullptr) {  // torn down meanwhile: the tees are gone with it
      if (p->vtee_pad != nullptr) gst_object_unref(p->vtee_pad);
      if (p->atee_pad != nullptr) gst_object_unref(p->atee_pad);
      p->vtee_pad = p->atee_pad = nullptr;
      return;
    }
    release_tee_pads(*p);
    if (p->bin == nullptr) return;
    set_null_with_watchdog(p->bin, opts.shutdown_timeout_ms);
    gst_bin_remove(GST_BIN(pipeline), p->bin);
    p->bin = nullptr;
    p->webrtc = nullptr;
  }

  // ---- stats and rate control ----

  void tick() {
    std::int64_t now = monotonic_us();
    double dt = std::max(1e-3, (now - tick_us) / 1e6);
    std::uint64_t f = frames.load(), b = bytes.load();
    BroadcastStats s;
    s.elapsed_s = (now - start_us) / 1e6;
    s.fps = double(f - tick_frames) / dt;
    s.sent_kbps = double(b - tick_bytes) * 8.0 / 1000.0 / dt;
    s.frames_sent = f;
    s.keyframes_requested = fku_events.load();
    tick_frames = f;
    tick_bytes = b;
    tick_us = now;
    bool any_report = false;
    for (auto& [session, p] : peers) {
      ++s.watchers;
      if (p->connected) ++s.connected;
      if (p->connected) update_peer_stats(*p, read_session_totals(p->webrtc));
      if (!p->have_stats) continue;
      any_report = true;
      s.worst_loss = std::max(s.worst_loss, p->loss);
      if (p->rtt_ms && (!s.worst_rtt_ms || *p->rtt_ms > *s.worst_rtt_ms)) s.worst_rtt_ms = p->rtt_ms;
    }
    if (opts.adapt_bitrate && any_report) adapt(s.worst_loss);
    s.target_kbps = target_kbps;
    current = s;
    if (auto cb = on_stats) cb(current);
  }

  void adapt(double loss) {
    unsigned next = next_bitrate_kbps(target_kbps, loss, opts.min_bitrate_kbps, opts.bitrate_kbps);
    if (next == target_kbps) return;
    target_kbps = next;
    if (opts.video == VideoCodec::vp8) {
      g_object_set(venc, "target-bitrate", gint(next * 1000), nullptr);
    } else {
      g_object_set(venc, "bitrate", guint(next), nullptr);
    }
  }

  // Loss from the receiver reports: the larger of RTCP's last fraction lost (which may be about
  // audio only) and the growth of the cumulative count against what we sent since last time.
  static void update_peer_stats(Peer& p, const RtpTotals& t) {
    double loss = t.remote_fraction_lost.value_or(0.0);
    if (p.have_stats && t.packets_sent > p.last.packets_sent) {
      double lost = double(t.remote_packets_lost - p.last.remote_packets_lost);
      loss = std::max(loss, std::clamp(lost / double(t.packets_sent - p.last.packets_sent), 0.0, 1.0));
    }
    p.loss = loss;
    if (t.rtt_s) p.rtt_ms = *t.rtt_s * 1000.0;
    p.last = t;
    p.have_stats = true;
  }
};

Broadcaster::Broadcaster(BroadcastOptions options, Signaller& signaller, GMainContext* ctx)
    : impl_(std::make_shared<Impl>(std::move(options), signaller, ctx)) {}

Broadcaster::~Broadcaster() {
  if (impl_) impl_->stop();
}

void Broadcaster::start() { impl_->start(); }
void Broadcaster::stop() { impl_->stop(); }
bool Broadcaster::running() const { return impl_->running; }
BroadcastStats Broadcaster::stats() const { return impl_->current; }

std::vector<std::string> Broadcaster::sessions() const {
  std::vector<std::string> out;
  for (const auto& [s, p] : impl_->peers) out.push_back(s);
  return out;
}

void Broadcaster::end_session(const std::string& session) {
  if (impl_->peers.count(session) == 0) return;
  impl_->sig.end_session(session);
  impl_->remove_peer(session, "ended");
}

std::string Broadcaster::pipeline_description() const { return pipeline_launch(impl_->opts); }

void Broadcaster::set_on_error(std::function<void(const std::string&)> cb) { impl_->on_error = std::move(cb); }
void Broadcaster::set_on_eos(std::function<void()> cb) { impl_->on_eos = std::move(cb); }
void Broadcaster::set_on_stats(std::function<void(const BroadcastStats&)> cb) { impl_->on_stats = std::move(cb); }
void Broadcaster::set_on_session(std::function<void(const std::string&, const std::string&)> cb) {
  impl_->on_session = std::move(cb);
}

}  // namespace p2p::media
