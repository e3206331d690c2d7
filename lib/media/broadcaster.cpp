// media/broadcaster: source -> encoder -> payloader -> tee, and one gated webrtcbin branch per
// watcher session, driven from the main context; webrtcbin's threads only post work to it.
#include "media/broadcaster_impl.hpp"

namespace p2p::media {

using namespace broadcast_impl;

namespace {

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

// ---- the shared pipeline ----

void Broadcaster::Impl::build() {
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
  bus_source = watch_bus(pipeline, &Impl::bus_message, this, ctx);
}

void Broadcaster::Impl::install_probes() {
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

GstPadProbeReturn Broadcaster::Impl::count_frame(GstPad*, GstPadProbeInfo* info, gpointer d) {
  auto* self = static_cast<Impl*>(d);
  self->frames.fetch_add(1, std::memory_order_relaxed);
  GstBuffer* buf = GST_PAD_PROBE_INFO_BUFFER(info);
  if (!GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_DELTA_UNIT)) {
    self->last_keyframe_pts.store(GST_BUFFER_PTS(buf), std::memory_order_release);
  }
  self->bytes.fetch_add(gst_buffer_get_size(buf), std::memory_order_relaxed);
  return GST_PAD_PROBE_OK;
}

GstPadProbeReturn Broadcaster::Impl::watch_events(GstPad*, GstPadProbeInfo* info, gpointer d) {
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
    if (ctx != nullptr) post_while_alive(weak, ctx, [](Impl& self) { self.source_ended(); });
  }
  return GST_PAD_PROBE_OK;
}

GstPadProbeReturn Broadcaster::Impl::raw_frame(GstPad* pad, GstPadProbeInfo* info, gpointer d) {
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

void Broadcaster::Impl::start() {
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

std::string Broadcaster::Impl::pop_error() {
  GstBus* bus = gst_pipeline_get_bus(GST_PIPELINE(pipeline));
  GstMessage* msg = gst_bus_timed_pop_filtered(bus, GST_SECOND, GST_MESSAGE_ERROR);
  gst_object_unref(bus);
  if (msg == nullptr) return "state change failed";
  std::string out = error_text(msg);
  gst_message_unref(msg);
  return out;
}

void Broadcaster::Impl::stop() {
  if (!running) {
    teardown();
    return;
  }
  running = false;
  stats_timer.cancel();
  sig.stop();
  teardown();
}

void Broadcaster::Impl::teardown() {
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

void Broadcaster::Impl::fatal(const std::string& msg) {
  if (!running) return;
  stop();
  if (auto cb = on_error) cb(msg);
}

void Broadcaster::Impl::source_ended() {
  if (!running) return;
  stop();
  if (auto cb = on_eos) cb();
}

gboolean Broadcaster::Impl::bus_message(GstBus*, GstMessage* msg, gpointer d) {
  static_cast<Impl*>(d)->on_bus(msg);
  return G_SOURCE_CONTINUE;
}

void Broadcaster::Impl::on_bus(GstMessage* msg) {
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

// ---- stats and rate control ----

void Broadcaster::Impl::tick() {
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

void Broadcaster::Impl::adapt(double loss) {
  unsigned next = next_bitrate_kbps(target_kbps, loss, opts.min_bitrate_kbps, opts.bitrate_kbps);
  if (next == target_kbps) return;
  target_kbps = next;
  if (opts.video == VideoCodec::vp8) {
    g_object_set(venc, "target-bitrate", gint(next * 1000), nullptr);
  } else {
    g_object_set(venc, "bitrate", guint(next), nullptr);
  }
}

void Broadcaster::Impl::update_peer_stats(Peer& p, const RtpTotals& t) {
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
