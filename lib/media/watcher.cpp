// media/watcher: webrtcbin answering one broadcaster's offer; on pad-added, depay -> parse ->
// decoder -> sink, or -> muxer -> file. Signalling and stats run on the main context; branches are
// built on the streaming thread that announces the pad, so no packet waits for the main loop.
#include "media/watcher.hpp"

#include <gst/video/video.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "media/gst_util.hpp"
#include "media/webrtc_util.hpp"
#include "util/error.hpp"

namespace p2p::media {
namespace {

// NACK below this jitter-buffer latency causes spurious loss events that, with
// wait-for-keyframe, stall video (measured by the prototype).
constexpr unsigned kNackMinLatencyMs = 50;
constexpr unsigned kMuxWaitMs = 5000;  // how long a recording waits for a track that never comes

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool has_property(GstElement* e, const char* name) {
  return g_object_class_find_property(G_OBJECT_GET_CLASS(e), name) != nullptr;
}

GstElement* sink_element(const char* factory, bool sync) {
  GstElement* e = make_element(factory);
  // Added while the pipeline plays: an async sink would wait for a preroll that never comes.
  if (has_property(e, "async")) g_object_set(e, "async", FALSE, nullptr);
  if (has_property(e, "sync")) g_object_set(e, "sync", sync ? TRUE : FALSE, nullptr);
  if (GST_IS_BIN(e)) g_object_set(e, "async-handling", TRUE, nullptr);
  return e;
}

// Caps for the transceiver: the offer's codecs we can receive, in our order of preference.
GstCaps* receive_preferences(const OfferedMedia& m) {
  const auto& usable = m.kind == "video" ? receivable_video_codecs() : receivable_audio_codecs();
  GstCaps* caps = gst_caps_new_empty();
  for (const auto& codec : usable) {
    if (std::find(m.codecs.begin(), m.codecs.end(), codec) == m.codecs.end()) continue;
    gst_caps_append_structure(caps, gst_structure_new("application/x-rtp", "media", G_TYPE_STRING,
                                                      m.kind.c_str(), "encoding-name", G_TYPE_STRING,
                                                      codec.c_str(), nullptr));
  }
  return caps;
}

}  // namespace

struct Watcher::Impl : std::enable_shared_from_this<Watcher::Impl> {
  struct Tag {
    std::weak_ptr<Impl> impl;
    unsigned serial;
  };

  WatchOptions opts;
  Signaller& sig;
  GMainContext* ctx;
  GstElement* pipeline = nullptr;
  GstElement* webrtc = nullptr;
  GSource* bus_source = nullptr;
  std::string session_id;
  unsigned serial = 0;
  bool started = false;
  bool finished = false;
  bool remote_set = false;
  std::vector<std::pair<std::string, unsigned>> pending_ice;  // for session_id, before the offer
  std::string answer_text;
  std::thread warmer;

  // Touched on streaming threads: guarded by mutex or atomic.
  std::mutex mutex;
  bool video_taken = false;
  bool audio_taken = false;
  std::string video_codec;
  std::vector<OfferedMedia> offered;  // the current offer's m-lines
  GstElement* mux = nullptr;
  GstPad* mux_video = nullptr;
  GstPad* mux_audio = nullptr;
  std::atomic<std::uint64_t> frames{0}, audio_bufs{0};
  std::atomic<std::int64_t> first_frame_us{-1};
  std::deque<std::pair<GstClockTime, std::int64_t>> in_decoder;  // pts -> when it went in
  double decode_sum_ms = 0;
  std::uint64_t decode_count = 0;

  Timer stats_timer;
  Timer mux_timer;
  std::int64_t start_us = 0, tick_us = 0;
  std::uint64_t tick_frames = 0;
  std::optional<RtpTotals> last_totals;
  std::int64_t last_totals_us = 0;
  WatchStats current{};
  std::function<void(const WatchStats&)> on_stats;
  std::function<void(WatchEnd, const std::string&)> on_end;

  Impl(WatchOptions o, Signaller& s, GMainContext* c)
      : opts(std::move(o)), sig(s), ctx(c != nullptr ? c : g_main_context_default()) {
    opts.validate();
    if (opts.sink == WatchSink::display && !display_available()) {
      throw UsageError("--display needs a display (DISPLAY or WAYLAND_DISPLAY); use --ascii or --null");
    }
    if (opts.sink == WatchSink::ascii && !have_element("aasink")) {
      throw UsageError("--ascii needs aasink (gstreamer1.0-plugins-good)");
    }
    ensure_gst_init();
  }

  ~Impl() {
    if (warmer.joinable()) warmer.join();
  }

  static void post_to(const std::weak_ptr<Impl>& weak, GMainContext* ctx, std::function<void(Impl&)> fn) {
    post(ctx, [weak, fn = std::move(fn)] {
      if (auto self = weak.lock()) fn(*self);
    });
  }

  // ---- lifecycle ----

  void start() {
    if (started) return;
    started = true;
    start_us = tick_us = monotonic_us();
    warmer = std::thread(warm_dtls_certificate);
    pipeline = gst_pipeline_new("watch");
    gst_object_ref_sink(pipeline);
    GstBus* bus = gst_pipeline_get_bus(GST_PIPELINE(pipeline));
    bus_source = gst_bus_create_watch(bus);
    g_source_set_callback(bus_source, G_SOURCE_FUNC(&Impl::bus_message), this, nullptr);
    g_source_attach(bus_source, ctx);
    gst_object_unref(bus);
    std::weak_ptr<Impl> weak = weak_from_this();
    stats_timer = Timer(ctx, opts.stats_interval_ms, [weak] {
      auto self = weak.lock();
      if (!self) return false;
      self->tick();
      return true;
    });
    SignallerEvents ev;
    ev.session_requested = [](const std::string&, const std::string&) {};  // we wait for the offer
    ev.remote_sdp = [weak](const std::string& s, const Sdp& sdp) {
      if (auto self = weak.lock()) self->remote_sdp(s, sdp);
    };
    ev.remote_ice = [weak](const std::string& s, const std::string& cand, unsigned mline) {
      if (auto self = weak.lock()) self->remote_ice(s, cand, mline);
    };
    ev.session_ended = [weak](const std::string& s) {
      auto self = weak.lock();
      if (self && (self->session_id.empty() || s == self->session_id)) {
        self->finish(WatchEnd::broadcaster_ended, "the broadcaster ended the stream");
      }
    };
    ev.error = [weak](const std::string& msg) {
      if (auto self = weak.lock()) self->finish(WatchEnd::error, "signalling: " + msg);
    };
    sig.set_events(std::move(ev));
    sig.start();
  }

  void stop() {
    if (started && !finished && !session_id.empty()) sig.end_session(session_id);
    if (started) sig.stop();
    finished = true;
    teardown();
  }

  void teardown() {
    stats_timer.cancel();
    mux_timer.cancel();
    if (bus_source != nullptr) {
      g_source_destroy(bus_source);
      g_source_unref(bus_source);
      bus_source = nullptr;
    }
    if (pipeline != nullptr) {
      set_null_with_watchdog(pipeline, opts.shutdown_timeout_ms);
      std::lock_guard lock(mutex);
      if (mux_video != nullptr) gst_object_unref(mux_video);
      if (mux_audio != nullptr) gst_object_unref(mux_audio);
      mux_video = mux_audio = nullptr;
      mux = nullptr;
      gst_object_unref(pipeline);
      pipeline = nullptr;
      webrtc = nullptr;
    }
    if (warmer.joinable()) warmer.join();
  }

  // Ends watching once: stops everything, then tells the owner why.
  void finish(WatchEnd why, const std::string& message) {
    if (finished) return;
    tick();  // the last figures, with the final counts
    current.state = "ended";
    if (!session_id.empty() && why == WatchEnd::error) sig.end_session(session_id);
    sig.stop();
    finished = true;
    teardown();
    if (auto cb = on_end) cb(why, message);
  }

  static gboolean bus_message(GstBus*, GstMessage* msg, gpointer d) {
    auto* self = static_cast<Impl*>(d);
    if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
      GError* err = nullptr;
      gchar* dbg = nullptr;
      gst_message_parse_error(msg, &err, &dbg);
      std::string text = std::string(GST_OBJECT_NAME(GST_MESSAGE_SRC(msg))) + ": " +
                         (err != nullptr ? err->message : "unknown error");
      g_clear_error(&err);
      g_free(dbg);
      self->finish(WatchEnd::error, text);
    }
    return G_SOURCE_CONTINUE;
  }

  // ---- signalling ----

  void remote_sdp(const std::string& session, const Sdp& sdp) {
    if (finished) return;
    if (sdp.type != SdpType::offer) return;  // we never offer, so an answer is stray
    if (!session_id.empty() && session != session_id) {
      sig.end_session(session);  // one broadcaster at a time
      return;
    }
    std::vector<OfferedMedia> media;
    SessionDescription desc;
    try {
      media = summarize_offer(sdp.text);
      desc = parse_sdp(sdp);
    } catch (const Error& e) {
      session_id = session;
      finish(WatchEnd::error, e.what());
      return;
    }
    bool fresh = session_id.empty();
    session_id = session;
    {
      std::lock_guard lock(mutex);
      offered = media;
    }
    current.state = "connecting";
    try {
      if (fresh) create_webrtc();
      if (fresh && opts.sink == WatchSink::record) create_muxer(media);
    } catch (const Error& e) {
      finish(WatchEnd::error, e.what());
      return;
    }
    std::weak_ptr<Impl> weak = weak_from_this();
    GMainContext* c = ctx;
    GstPromise* promise = make_promise([weak, c](const PromiseReply& r) {
      std::string err = r.error();
      post_to(weak, c, [err](Impl& self) { self.remote_offer_set(err); });
    });
    g_signal_emit_by_name(webrtc, "set-remote-description", desc.get(), promise);
  }

  void remote_ice(const std::string& session, const std::string& candidate, unsigned mline) {
    if (finished || candidate.empty()) return;
    if (session_id.empty()) session_id = session;  // candidates may overtake the offer
    if (session != session_id) return;
    if (!remote_set) {
      pending_ice.emplace_back(candidate, mline);
      return;
    }
    g_signal_emit_by_name(webrtc, "add-ice-candidate", mline, candidate.c_str());
  }

  void create_webrtc() {
    ++serial;
    webrtc = make_webrtcbin(opts.ice, "webrtc");
    g_object_set(webrtc, "latency", opts.latency_ms, nullptr);
    connect("on-new-transceiver", &Impl::on_new_transceiver);
    connect("pad-added", &Impl::on_pad_added);
    connect("on-ice-candidate", &Impl::on_ice_candidate);
    connect("notify::connection-state", &Impl::on_connection_state);
    gst_bin_add(GST_BIN(pipeline), webrtc);
    if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
      throw RuntimeError("the watch pipeline did not start");
    }
  }

  template <class F>
  void connect(const char* signal, F handler) {
    g_signal_connect_data(webrtc, signal, G_CALLBACK(handler), new Tag{weak_from_this(), serial},
                          [](gpointer d, GClosure*) { delete static_cast<Tag*>(d); }, GConnectFlags(0));
  }

  // Recording: the mux wants every track's pad before it starts, so request them now from
  // what the offer announces; a track that never arrives is released after kMuxWaitMs.
  void create_muxer(const std::vector<OfferedMedia>& media) {
    bool webm = ends_with(opts.output, ".webm");
    auto has = [&](const char* kind) {
      return std::any_of(media.begin(), media.end(),
                         [&](const OfferedMedia& m) { return m.kind == kind && m.receivable; });
    };
    GstElement* m = make_element(webm ? "webmmux" : "matroskamux", "mux");
    g_object_set(m, "streamable", TRUE, nullptr);
    GstElement* file = sink_element("filesink", false);
    g_object_set(file, "location", opts.output.c_str(), nullptr);
    gst_bin_add_many(GST_BIN(pipeline), m, file, nullptr);
    link_elements(m, file);
    std::lock_guard lock(mutex);
    mux = m;
    if (has("video")) mux_video = gst_element_request_pad_simple(m, "video_%u");
    if (has("audio") && opts.audio) mux_audio = gst_element_request_pad_simple(m, "audio_%u");
    gst_element_sync_state_with_parent(file);
    gst_element_sync_state_with_parent(m);
  }

  // Main context: the offer is in. Pick codecs and directions, then answer.
  void remote_offer_set(const std::string& err) {
    if (finished || webrtc == nullptr) return;
    if (!err.empty()) {
      finish(WatchEnd::error, "the broadcaster's offer was refused: " + err);
      return;
    }
    remote_set = true;
    configure_transceivers();
    std::weak_ptr<Impl> weak = weak_from_this();
    GMainContext* c = ctx;
    GstPromise* promise = make_promise([weak, c](const PromiseReply& r) {
      std::string e = r.error();
      GstWebRTCSessionDescription* answer = nullptr;
      if (e.empty() && r.reply != nullptr) gst_structure_get(r.reply, "answer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &answer, nullptr);
      SessionDescription desc(answer, SdpDeleter{});
      post_to(weak, c, [desc, e](Impl& self) { self.answer_created(desc, e); });
    });
    g_signal_emit_by_name(webrtc, "create-answer", nullptr, promise);
  }

  // recvonly with our codecs where the peer sends something we can play; inactive for the
  // rest (a browser's unused screen-share transceivers, codecs we cannot decode). Runs for the
  // transceivers that exist now and, from on-new-transceiver, for those create-answer makes.
  void configure_transceivers() {
    GArray* all = nullptr;
    g_signal_emit_by_name(webrtc, "get-transceivers", &all);
    if (all == nullptr) return;
    for (guint i = 0; i < all->len; ++i) configure(g_array_index(all, GstWebRTCRTPTransceiver*, i));
    g_array_unref(all);
  }

  void configure(GstWebRTCRTPTransceiver* t) {
    guint mline = G_MAXUINT;
    g_object_get(t, "mlineindex", &mline, nullptr);
    std::optional<OfferedMedia> m;
    {
      std::lock_guard lock(mutex);
      if (mline < offered.size()) m = offered[mline];
    }
    if (!m) return;
    if (!m->receivable) {
      g_object_set(t, "direction", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_INACTIVE, nullptr);
      return;
    }
    GstCaps* caps = receive_preferences(*m);
    g_object_set(t, "direction", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_RECVONLY, "codec-preferences", caps, nullptr);
    gst_caps_unref(caps);
  }

  void answer_created(const SessionDescription& answer, const std::string& err) {
    if (finished || webrtc == nullptr) return;
    if (!answer) {
      finish(WatchEnd::error, "could not answer the broadcaster's offer: " + (err.empty() ? "no answer" : err));
      return;
    }
    answer_text = sdp_text(answer.get());
    sig.send_sdp(session_id, Sdp{SdpType::answer, answer_text});
    g_signal_emit_by_name(webrtc, "set-local-description", answer.get(), nullptr);
    for (const auto& [cand, mline] : pending_ice) {
      g_signal_emit_by_name(webrtc, "add-ice-candidate", mline, cand.c_str());
    }
    pending_ice.clear();
  }

  // ---- webrtcbin signals ----

  static bool is_current(const Tag& t, std::shared_ptr<Impl>& self) {
    self = t.impl.lock();
    return self && self->serial == t.serial;
  }

  static void on_new_transceiver(GstElement*, GstWebRTCRTPTransceiver* trans, gpointer d) {
    auto* t = static_cast<Tag*>(d);
    std::shared_ptr<Impl> self = t->impl.lock();
    if (!self) return;
    bool nack = self->opts.latency_ms >= kNackMinLatencyMs;
    g_object_set(trans, "do-nack", nack ? TRUE : FALSE, nullptr);
    self->configure(trans);
  }

  static void on_ice_candidate(GstElement*, guint mline, gchar* candidate, gpointer d) {
    Tag t = *static_cast<Tag*>(d);
    std::string cand = candidate != nullptr ? candidate : "";
    std::shared_ptr<Impl> self;
    if (!is_current(t, self)) return;
    post_to(t.impl, self->ctx, [t, cand, mline](Impl& impl) {
      if (impl.serial == t.serial && !impl.finished) impl.sig.add_ice(impl.session_id, cand, mline);
    });
  }

  static void on_connection_state(GstElement* webrtc, GParamSpec*, gpointer d) {
    Tag t = *static_cast<Tag*>(d);
    GstWebRTCPeerConnectionState state{};
    g_object_get(webrtc, "connection-state", &state, nullptr);
    std::shared_ptr<Impl> self;
    if (!is_current(t, self) || state != GST_WEBRTC_PEER_CONNECTION_STATE_FAILED) return;
    post_to(t.impl, self->ctx, [](Impl& impl) {
      impl.finish(WatchEnd::error, "the connection to the broadcaster failed (ICE/DTLS)");
    });
  }

  static void on_pad_added(GstElement*, GstPad* pad, gpointer d) {
    Tag t = *static_cast<Tag*>(d);
    std::shared_ptr<Impl> self;
    if (!is_current(t, self) || GST_PAD_DIRECTION(pad) != GST_PAD_SRC) return;
    try {
      self->attach(pad);
    } catch (const std::exception& e) {
      std::string msg = e.what();
      post_to(t.impl, self->ctx, [msg](Impl& impl) { impl.finish(WatchEnd::error, msg); });
    }
  }

  // ---- branches (streaming thread) ----

  // Elements to add and link in order; a recording chain ends in a queue that feeds mux_pad.
  struct Chain {
    std::vector<GstElement*> elements;
    GstPad* mux_pad = nullptr;
  };

  void attach(GstPad* pad) {
    GstCaps* caps = gst_pad_get_current_caps(pad);
    if (caps == nullptr) caps = gst_pad_query_caps(pad, nullptr);
    const GstStructure* s = gst_caps_get_structure(caps, 0);
    std::string media = gst_structure_get_string(s, "media") != nullptr ? gst_structure_get_string(s, "media") : "";
    std::string codec =
        gst_structure_get_string(s, "encoding-name") != nullptr ? gst_structure_get_string(s, "encoding-name") : "";
    gst_caps_unref(caps);
    Chain chain;
    std::lock_guard lock(mutex);
    if (pipeline == nullptr) return;
    if (media == "video" && !video_taken && depayloader(codec) != nullptr) {
      video_taken = true;
      video_codec = codec;
      chain = video_chain(codec);
    } else if (media == "audio" && !audio_taken && opts.audio && codec == "OPUS") {
      audio_taken = true;
      chain = audio_chain();
    } else {
      chain.elements = {sink_element("fakesink", false)};  // extra tracks: drain them, block nothing
    }
    add_chain(chain, pad);
  }

  static const char* depayloader(const std::string& codec) {
    if (codec == "VP8") return "rtpvp8depay";
    if (codec == "H264") return "rtph264depay";
    if (codec == "VP9") return "rtpvp9depay";
    return nullptr;
  }

  static const char* decoder(const std::string& codec) {
    if (codec == "VP8") return "vp8dec";
    if (codec == "H264") return "avdec_h264";  // openh264dec cannot decode x264's output
    return "vp9dec";
  }

  GstElement* make_depay(const std::string& codec) {
    GstElement* depay = make_element(depayloader(codec));
    if (has_property(depay, "request-keyframe")) g_object_set(depay, "request-keyframe", TRUE, nullptr);
    if (has_property(depay, "wait-for-keyframe")) {
      g_object_set(depay, "wait-for-keyframe", opts.latency_ms >= kNackMinLatencyMs ? TRUE : FALSE, nullptr);
    }
    return depay;
  }

  Chain video_chain(const std::string& codec) {
    Chain chain;
    auto& c = chain.elements;
    c.push_back(make_depay(codec));
    if (!opts.decode) {
      add_probe(c.back(), "src", &Impl::count_video);
      c.push_back(sink_element("fakesink", false));
      return chain;
    }
    if (codec == "H264") c.push_back(make_element("h264parse"));
    if (opts.sink == WatchSink::record) {
      GstElement* q = make_element("queue");
      add_probe(q, "src", &Impl::count_video);
      c.push_back(q);
      if (mux_video == nullptr) c.push_back(sink_element("fakesink", false));
      chain.mux_pad = mux_video;
      return chain;
    }
    GstElement* dec = make_element(decoder(codec));
    add_probe(dec, "sink", &Impl::into_decoder);
    add_probe(dec, "src", &Impl::out_of_decoder);
    c.push_back(dec);
    switch (opts.sink) {
      case WatchSink::null:
      case WatchSink::record:
        c.push_back(sink_element("fakesink", false));
        break;
      case WatchSink::ascii: {
        c.push_back(make_element("queue"));
        c.push_back(make_element("videoconvert"));
        GstElement* aa = sink_element("aasink", true);
        g_object_set(aa, "driver", 4 /* stdout */, nullptr);
        c.push_back(aa);
        break;
      }
      case WatchSink::display:
        c.push_back(make_element("queue"));
        c.push_back(make_element("videoconvert"));
        c.push_back(sink_element("autovideosink", true));
        break;
    }
    return chain;
  }

  Chain audio_chain() {
    Chain chain;
    auto& c = chain.elements;
    c.push_back(make_element("rtpopusdepay"));
    if (!opts.decode) {
      add_probe(c.back(), "src", &Impl::count_audio);
      c.push_back(sink_element("fakesink", false));
      return chain;
    }
    if (opts.sink == WatchSink::record) {
      c.push_back(make_element("opusparse"));
      GstElement* q = make_element("queue");
      add_probe(q, "src", &Impl::count_audio);
      c.push_back(q);
      if (mux_audio == nullptr) c.push_back(sink_element("fakesink", false));
      chain.mux_pad = mux_audio;
      return chain;
    }
    GstElement* dec = make_element("opusdec");
    add_probe(dec, "src", &Impl::count_audio);
    c.push_back(dec);
    if (opts.sink == WatchSink::display) {
      c.push_back(make_element("queue"));
      c.push_back(make_element("audioconvert"));
      c.push_back(make_element("audioresample"));
      c.push_back(sink_element("autoaudiosink", true));
    } else {
      c.push_back(sink_element("fakesink", false));
    }
    return chain;
  }

  void add_probe(GstElement* e, const char* pad_name, GstPadProbeCallback cb) {
    GstPad* pad = gst_element_get_static_pad(e, pad_name);
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, cb, this, nullptr);
    gst_object_unref(pad);
  }

  // Adds and links the chain (and its muxer pad), starts it downstream first, then links the
  // webrtcbin pad into it.
  void add_chain(const Chain& chain, GstPad* src) {
    const auto& c = chain.elements;
    for (GstElement* e : c) gst_bin_add(GST_BIN(pipeline), e);
    for (std::size_t i = 0; i + 1 < c.size(); ++i) link_elements(c[i], c[i + 1]);
    if (chain.mux_pad != nullptr) link_to_mux(c.back(), chain.mux_pad);
    for (auto it = c.rbegin(); it != c.rend(); ++it) gst_element_sync_state_with_parent(*it);
    GstPad* sink = gst_element_get_static_pad(c.front(), "sink");
    GstPadLinkReturn r = gst_pad_link(src, sink);
    gst_object_unref(sink);
    if (r != GST_PAD_LINK_OK) {
      throw RuntimeError(std::string("cannot link the received stream: ") + gst_pad_link_get_name(r));
    }
  }

  void link_to_mux(GstElement* last, GstPad* target) {
    GstPad* out = gst_element_get_static_pad(last, "src");
    GstPadLinkReturn r = gst_pad_link(out, target);
    gst_object_unref(out);
    if (r != GST_PAD_LINK_OK) {
      throw RuntimeError(std::string("cannot record this stream into ") + opts.output + " (" +
                         gst_pad_link_get_name(r) + "); H.264 needs a .mkv file");
    }
    std::weak_ptr<Impl> weak = weak_from_this();
    post_to(weak, ctx, [](Impl& self) { self.arm_mux_timer(); });
  }

  // ---- probes (streaming threads) ----

  static GstPadProbeReturn count_video(GstPad*, GstPadProbeInfo*, gpointer d) {
    static_cast<Impl*>(d)->frame_out();
    return GST_PAD_PROBE_OK;
  }

  static GstPadProbeReturn count_audio(GstPad*, GstPadProbeInfo*, gpointer d) {
    static_cast<Impl*>(d)->audio_bufs.fetch_add(1, std::memory_order_relaxed);
    return GST_PAD_PROBE_OK;
  }

  void frame_out() {
    if (frames.fetch_add(1, std::memory_order_relaxed) == 0) {
      std::int64_t expected = -1;
      first_frame_us.compare_exchange_strong(expected, monotonic_us());
    }
  }

  static GstPadProbeReturn into_decoder(GstPad*, GstPadProbeInfo* info, gpointer d) {
    auto* self = static_cast<Impl*>(d);
    GstClockTime pts = GST_BUFFER_PTS(GST_PAD_PROBE_INFO_BUFFER(info));
    if (!GST_CLOCK_TIME_IS_VALID(pts)) return GST_PAD_PROBE_OK;
    std::lock_guard lock(self->mutex);
    self->in_decoder.emplace_back(pts, monotonic_us());
    while (self->in_decoder.size() > 64) self->in_decoder.pop_front();  // frames the decoder dropped
    return GST_PAD_PROBE_OK;
  }

  static GstPadProbeReturn out_of_decoder(GstPad* pad, GstPadProbeInfo* info, gpointer d) {
    auto* self = static_cast<Impl*>(d);
    GstBuffer* buf = GST_PAD_PROBE_INFO_BUFFER(info);
    GstClockTime pts = GST_BUFFER_PTS(buf);
    std::int64_t now = monotonic_us();
    {
      std::lock_guard lock(self->mutex);
      auto& q = self->in_decoder;
      auto it = std::find_if(q.begin(), q.end(), [&](const auto& e) { return e.first == pts; });
      if (it != q.end()) {
        self->decode_sum_ms += double(now - it->second) / 1000.0;
        ++self->decode_count;
        q.erase(q.begin(), it + 1);
      }
    }
    self->frame_out();
    if (self->opts.on_video_frame) self->deliver_frame(pad, buf);
    return GST_PAD_PROBE_OK;
  }

  void deliver_frame(GstPad* pad, GstBuffer* buf) {
    GstCaps* caps = gst_pad_get_current_caps(pad);
    if (caps == nullptr) return;
    GstVideoInfo info;
    bool ok = gst_video_info_from_caps(&info, caps);
    gst_caps_unref(caps);
    GstVideoFrame frame;
    if (!ok || !gst_video_frame_map(&frame, &info, buf, GST_MAP_READ)) return;
    RawFrame raw{static_cast<std::uint8_t*>(GST_VIDEO_FRAME_PLANE_DATA(&frame, 0)),
                 GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 0), GST_VIDEO_FRAME_WIDTH(&frame),
                 GST_VIDEO_FRAME_HEIGHT(&frame)};
    opts.on_video_frame(raw);
    gst_video_frame_unmap(&frame);
  }

  // ---- recording: give up on tracks that never came ----

  void arm_mux_timer() {
    if (mux_timer.active() || finished) return;
    std::weak_ptr<Impl> weak = weak_from_this();
    mux_timer = Timer(ctx, kMuxWaitMs, [weak] {
      if (auto self = weak.lock()) self->release_unused_mux_pads();
      return false;
    });
  }

  void release_unused_mux_pads() {
    std::lock_guard lock(mutex);
    for (GstPad** pad : {&mux_video, &mux_audio}) {
      if (*pad == nullptr || mux == nullptr || gst_pad_is_linked(*pad)) continue;
      gst_element_release_request_pad(mux, *pad);
      gst_object_unref(*pad);
      *pad = nullptr;
    }
  }

  // ---- stats ----

  void tick() {
    if (finished) return;
    std::int64_t now = monotonic_us();
    double dt = std::max(1e-3, (now - tick_us) / 1e6);
    std::uint64_t f = frames.load();
    WatchStats s = current;
    s.elapsed_s = (now - start_us) / 1e6;
    s.fps = double(f - tick_frames) / dt;
    s.frames_decoded = f;
    s.audio_buffers = audio_bufs.load();
    tick_frames = f;
    tick_us = now;
    {
      std::lock_guard lock(mutex);
      s.video_codec = video_codec;
      if (decode_count > 0) s.decode_latency_ms = decode_sum_ms / double(decode_count);
      decode_sum_ms = 0;
      decode_count = 0;
    }
    std::int64_t first = first_frame_us.load();
    if (first >= 0) {
      s.first_frame_ms = double(first - start_us) / 1000.0;
      s.state = "playing";
    }
    current = s;
    if (webrtc != nullptr) update_rtp(read_session_totals(webrtc));
    if (auto cb = on_stats) cb(current);
  }

  void update_rtp(const RtpTotals& t) {
    std::int64_t now = monotonic_us();
    if (last_totals && now > last_totals_us && t.bytes_received >= last_totals->bytes_received) {
      current.bitrate_kbps =
          double(t.bytes_received - last_totals->bytes_received) * 8.0 / 1000.0 / ((now - last_totals_us) / 1e6);
    }
    current.packets_received = t.packets_received;
    current.packets_lost = t.packets_lost;
    current.jitter_ms = t.jitter_s * 1000.0;
    if (t.rtt_s) current.rtt_ms = *t.rtt_s * 1000.0;
    last_totals = t;
    last_totals_us = now;
  }
};

Watcher::Watcher(WatchOptions options, Signaller& signaller, GMainContext* ctx)
    : impl_(std::make_shared<Impl>(std::move(options), signaller, ctx)) {}

Watcher::~Watcher() {
  if (impl_) impl_->stop();
}

void Watcher::start() { impl_->start(); }
void Watcher::stop() { impl_->stop(); }
bool Watcher::ended() const { return impl_->finished; }
WatchStats Watcher::stats() const { return impl_->current; }
std::uint64_t Watcher::frames() const { return impl_->frames.load(); }
std::uint64_t Watcher::audio_buffers() const { return impl_->audio_bufs.load(); }
std::string Watcher::session() const { return impl_->session_id; }
std::string Watcher::local_answer() const { return impl_->answer_text; }
void Watcher::set_on_stats(std::function<void(const WatchStats&)> cb) { impl_->on_stats = std::move(cb); }
void Watcher::set_on_end(std::function<void(WatchEnd, const std::string&)> cb) { impl_->on_end = std::move(cb); }

}  // namespace p2p::media
