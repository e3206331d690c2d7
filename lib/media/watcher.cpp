// media/watcher: the incoming webrtcbin and depayloaders live in one bin per parent (an Input);
// they feed a video and an audio tee that outlive parents. The tees feed our own playback (a
// LocalOutput: decode, record, or nothing) and one RelayBranch per child. Signalling, stats and relay children run on
// the main context; playback branches are built on the streaming thread that announces the pad,
// so no packet waits for the main loop.
#include "media/watcher_impl.hpp"

namespace p2p::media {

using namespace watch_impl;

// ---- lifecycle ----

void Watcher::Impl::start() {
  if (started) return;
  started = true;
  start_us = tick_us = monotonic_us();
  warmer = std::thread(warm_dtls_certificate);
  build_pipeline();
  // Beside the DTLS key, not after it; but after our own elements, since GStreamer loads one
  // plugin at a time and gst-libav alone takes about 70 ms.
  preloader = std::thread(preload_plugins);
  std::weak_ptr<Impl> weak = weak_from_this();
  stats_timer = Timer(ctx, opts.stats_interval_ms, repeat_while_alive(weak, &Impl::tick));
  SignallerEvents ev;
  ev.session_requested = while_alive(weak, &Impl::child_requested);
  ev.remote_sdp = while_alive(weak, &Impl::remote_sdp);
  ev.remote_ice = while_alive(weak, &Impl::remote_ice);
  ev.session_ended = while_alive(weak, &Impl::session_ended);
  ev.error = [weak](const std::string& msg) {
    if (auto self = weak.lock()) self->finish(WatchEnd::error, "signalling: " + msg);
  };
  ev.placement = while_alive(weak, &Impl::placement);
  sig.set_events(std::move(ev));
  sig.start();
}

void Watcher::Impl::build_pipeline() {
  pipeline = gst_pipeline_new("watch");
  gst_object_ref_sink(pipeline);
  vtee = make_element("tee", "vtee");
  atee = make_element("tee", "atee");
  for (GstElement* t : {vtee, atee}) {
    g_object_set(t, "allow-not-linked", TRUE, nullptr);
    gst_bin_add(GST_BIN(pipeline), t);
  }
  for (auto [tee, cb] : {std::pair{vtee, &Impl::into_video_tee}, std::pair{atee, &Impl::into_audio_tee}}) {
    GstPad* pad = gst_element_get_static_pad(tee, "sink");
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, cb, this, nullptr);
    gst_object_unref(pad);
  }
  bus_source = watch_bus(pipeline, &Impl::bus_message, this, ctx);
}

void Watcher::Impl::stop() {
  if (started && !finished) tick();  // the last figures, so a script's last line has the final counts
  if (started && !finished && input) sig.end_session(input->session);
  if (started) sig.stop();
  finished = true;
  teardown();
}

void Watcher::Impl::teardown() {
  stats_timer.cancel();
  mux_timer.cancel();
  keyframe_timer.cancel();
  if (bus_source != nullptr) {
    g_source_destroy(bus_source);
    g_source_unref(bus_source);
    bus_source = nullptr;
  }
  for (auto& [s, child] : children) child->forget();
  children.clear();
  pending_children.clear();
  if (pipeline != nullptr) {
    set_null_with_watchdog(pipeline, opts.shutdown_timeout_ms);
    {
      std::lock_guard lock(mutex);
      output.forget();
      input.reset();
      current_serial = 0;
    }
    retiring.clear();
    gst_object_unref(pipeline);
    pipeline = nullptr;
    vtee = atee = nullptr;
  }
  if (warmer.joinable()) warmer.join();
  if (preloader.joinable()) preloader.join();
  if (h264_loader.joinable()) h264_loader.join();
}

void Watcher::Impl::finish(WatchEnd why, const std::string& message, bool tell_parent) {
  if (finished) return;
  tick();  // the last figures, with the final counts
  current.state = "ended";
  if (input && why == WatchEnd::error && tell_parent) sig.end_session(input->session);
  sig.stop();
  finished = true;
  teardown();
  if (auto cb = on_end) cb(why, message);
}

gboolean Watcher::Impl::bus_message(GstBus*, GstMessage* msg, gpointer d) {
  if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) static_cast<Impl*>(d)->on_error(msg);
  return G_SOURCE_CONTINUE;
}

void Watcher::Impl::on_error(GstMessage* msg) {
  GError* err = nullptr;
  gchar* dbg = nullptr;
  gst_message_parse_error(msg, &err, &dbg);
  GstObject* src = GST_MESSAGE_SRC(msg);
  std::string text = std::string(GST_OBJECT_NAME(src)) + ": " + (err != nullptr ? err->message : "unknown error");
  g_clear_error(&err);
  g_free(dbg);
  // Posted by a former parent's bin or a child's branch before we removed it: stale.
  if (pipeline == nullptr || !is_inside(src, pipeline)) return;
  // An error inside one child's branch ends that child only.
  for (auto& [session, child] : children) {
    if (child->owns(src)) {
      std::string s = session;
      fail_child(s, text);
      return;
    }
  }
  for (const auto& old : retiring) {
    if (is_inside(src, old->bin)) return;  // a former parent's bin on its way out
  }
  if (input && is_inside(src, input->bin)) {
    incoming_failed(text);
    return;
  }
  finish(WatchEnd::error, text);
}

// ---- stats ----

void Watcher::Impl::tick() {
  if (finished) return;
  std::int64_t now = monotonic_us();
  double dt = std::max(1e-3, (now - tick_us) / 1e6);
  std::uint64_t f = output.frames();
  WatchStats s = current;
  s.elapsed_s = (now - start_us) / 1e6;
  s.fps = double(f - tick_frames) / dt;
  s.frames_decoded = opts.decode ? f : 0;
  s.frames_forwarded = forwarded.load();
  s.audio_buffers = output.audio_buffers();
  s.children = unsigned(children.size());
  tick_frames = f;
  tick_us = now;
  {
    std::lock_guard lock(mutex);
    s.video_codec = video_codec;
    s.decode_latency_ms = output.take_decode_latency_ms();
  }
  std::int64_t first = output.first_frame_us();
  if (first >= 0) {
    s.first_frame_ms = double(first - start_us) / 1000.0;
    if (input) s.state = "playing";
  }
  current = s;
  if (input) {
    input->last_totals = read_session_totals(input->webrtc);
    update_rtp(input->last_totals);
  }
  if (auto cb = on_stats) cb(current);
}

void Watcher::Impl::update_rtp(const RtpTotals& now_totals) {
  RtpTotals t = retired_totals;
  add_totals(t, now_totals);
  std::int64_t now = monotonic_us();
  if (last_bytes && now > last_bytes_us && t.bytes_received >= *last_bytes) {
    current.bitrate_kbps = double(t.bytes_received - *last_bytes) * 8.0 / 1000.0 / ((now - last_bytes_us) / 1e6);
  }
  current.packets_received = t.packets_received;
  current.packets_lost = t.packets_lost;
  current.jitter_ms = now_totals.jitter_s * 1000.0;
  if (now_totals.rtt_s) current.rtt_ms = *now_totals.rtt_s * 1000.0;
  last_bytes = t.bytes_received;
  last_bytes_us = now;
}

std::vector<std::string> Watcher::Impl::element_factories() const {
  std::vector<std::string> out;
  if (pipeline == nullptr) return out;
  GstIterator* it = gst_bin_iterate_recurse(GST_BIN(pipeline));
  GValue item = G_VALUE_INIT;
  while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
    auto* e = GST_ELEMENT(g_value_get_object(&item));
    if (GstElementFactory* f = gst_element_get_factory(e)) out.emplace_back(GST_OBJECT_NAME(f));
    g_value_reset(&item);
  }
  g_value_unset(&item);
  gst_iterator_free(it);
  return out;
}


Watcher::Watcher(WatchOptions options, Signaller& signaller, GMainContext* ctx)
    : impl_(std::make_shared<Impl>(std::move(options), signaller, ctx)) {}

Watcher::~Watcher() {
  if (impl_) impl_->stop();
}

void Watcher::start() { impl_->start(); }
void Watcher::stop() { impl_->stop(); }
bool Watcher::ended() const { return impl_->finished; }
WatchStats Watcher::stats() const { return impl_->current; }
std::uint64_t Watcher::frames() const { return impl_->output.frames(); }
std::uint64_t Watcher::audio_buffers() const { return impl_->output.audio_buffers(); }
std::uint64_t Watcher::frames_forwarded() const { return impl_->forwarded.load(); }
std::string Watcher::session() const { return impl_->input ? impl_->input->session : std::string(); }
std::string Watcher::local_answer() const { return impl_->answer_text; }
std::uint64_t Watcher::keyframes_requested() const { return impl_->keyframes_sent.load(); }
std::vector<std::string> Watcher::element_factories() const { return impl_->element_factories(); }

std::vector<std::string> Watcher::child_sessions() const {
  std::vector<std::string> out;
  for (const auto& [s, child] : impl_->children) out.push_back(s);
  return out;
}

void Watcher::set_on_stats(std::function<void(const WatchStats&)> cb) { impl_->on_stats = std::move(cb); }
void Watcher::set_on_end(std::function<void(WatchEnd, const std::string&)> cb) { impl_->on_end = std::move(cb); }

}  // namespace p2p::media
