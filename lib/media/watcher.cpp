// media/watcher: the incoming webrtcbin and depayloaders live in one bin per parent (an Input);
// they feed a video and an audio tee that outlive parents. The tees feed our own playback (a
// LocalOutput: decode, record, or nothing) and one RelayBranch per child. Signalling, stats and relay children run on
// the main context; playback branches are built on the streaming thread that announces the pad,
// so no packet waits for the main loop.
#include "media/watcher.hpp"

#include <gst/video/video.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "media/dtls_key.hpp"
#include "media/gst_util.hpp"
#include "media/local_output.hpp"
#include "media/relay_branch.hpp"
#include "media/relay_keyframes.hpp"
#include "media/webrtc_util.hpp"
#include "util/error.hpp"

namespace p2p::media {
namespace {

// NACK below this jitter-buffer latency causes spurious loss events that, with
// wait-for-keyframe, stall video (measured by the prototype).
constexpr unsigned kNackMinLatencyMs = 50;
constexpr unsigned kMuxWaitMs = 5000;  // how long a recording waits for a track that never comes
// Keyframe requests to our parent at most this often; the broadcaster holds its own at 500 ms.
constexpr std::int64_t kKeyframeGapUs = 300 * 1000;
// Marks the keyframe requests that already passed the gate, so the depayloader's probe lets them by.
constexpr const char* kGatedField = "p2p-gated";
// Candidates for sessions whose offer has not come yet: bounded, the peer may be hostile.
constexpr std::size_t kEarlyIceSessions = 8;
constexpr std::size_t kEarlyIcePerSession = 200;

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

const char* depayloader(const std::string& codec) {
  if (codec == "VP8") return "rtpvp8depay";
  if (codec == "H264") return "rtph264depay";
  if (codec == "VP9") return "rtpvp9depay";
  return nullptr;
}

bool is_inside(GstObject* obj, GstElement* bin) {
  return bin != nullptr && obj != nullptr && (obj == GST_OBJECT(bin) || gst_object_has_as_ancestor(obj, GST_OBJECT(bin)));
}

void add_totals(RtpTotals& into, const RtpTotals& t) {
  into.bytes_received += t.bytes_received;
  into.packets_received += t.packets_received;
  into.packets_lost += t.packets_lost;
}

}  // namespace

struct Watcher::Impl : std::enable_shared_from_this<Watcher::Impl> {
  // One incoming peer connection: the parent's webrtcbin and our depayloaders, in one bin.
  // Re-parenting replaces it while the tees, our playback and the children keep running.
  struct Input {
    std::string session;
    unsigned serial = 0;
    GstElement* bin = nullptr;  // our reference; the pipeline holds another while attached
    GstElement* webrtc = nullptr;
    bool remote_set = false;
    bool awaiting_placement = false;  // opened by an offer before the placement naming its parent
    std::vector<std::pair<std::string, unsigned>> pending_ice;
    std::vector<OfferedMedia> offered;
    RtpTotals last_totals{};
    // Set on streaming threads, under Impl::mutex.
    bool video_linked = false;
    bool audio_linked = false;
    GstPad* video_out = nullptr;  // the bin's ghost pads into the tees
    GstPad* audio_out = nullptr;
    GstPad* video_in = nullptr;  // the depayloader's sink: keyframe requests go up from here

    ~Input() {
      unref_pad(video_out);
      unref_pad(audio_out);
      unref_pad(video_in);
      if (bin != nullptr) gst_object_unref(bin);
    }
  };
  using InputPtr = std::shared_ptr<Input>;

  // Handed to webrtcbin signal handlers: which input, without keeping anything alive.
  struct Tag {
    std::weak_ptr<Impl> impl;
    std::weak_ptr<Input> input;
  };

  WatchOptions opts;
  Signaller& sig;
  GMainContext* ctx;
  GstElement* pipeline = nullptr;
  GstElement* vtee = nullptr;
  GstElement* atee = nullptr;
  GSource* bus_source = nullptr;
  bool started = false;
  bool finished = false;
  bool playing = false;
  unsigned serials = 0;
  std::atomic<unsigned> current_serial{0};
  InputPtr input;                  // main context; the streaming threads go through Tag
  std::vector<InputPtr> retiring;  // old inputs until their bins are gone
  std::set<std::string> retired_sessions;
  std::map<std::string, std::vector<std::pair<std::string, unsigned>>> early_ice;
  std::string answer_text;
  std::thread warmer, preloader, h264_loader;

  // Relay trees.
  bool tree_mode = false;  // the server places us (placement seen)
  std::map<std::string, std::shared_ptr<RelayBranch>> children;
  std::vector<std::string> pending_children;  // asked for before we knew the video codec
  unsigned child_index = 0;
  bool relay_audio = false;
  KeyframeGate gate{kKeyframeGapUs};
  Timer keyframe_timer;
  std::atomic<std::uint64_t> keyframes_sent{0};

  // Touched on streaming threads: guarded by mutex or atomic.
  std::mutex mutex;
  std::string video_codec;  // of the tee: fixed by the first video track
  std::atomic<std::uint64_t> forwarded{0};
  LocalOutput output{opts};  // our own playback, recording or counting
  bool recording_prepared = false;  // main context

  Timer stats_timer;
  Timer mux_timer;
  std::int64_t start_us = 0, tick_us = 0;
  std::uint64_t tick_frames = 0;
  RtpTotals retired_totals{};  // what earlier inputs received, so the counters never go back
  std::optional<std::uint64_t> last_bytes;
  std::int64_t last_bytes_us = 0;
  WatchStats current{};
  std::function<void(const WatchStats&)> on_stats;
  std::function<void(WatchEnd, const std::string&)> on_end;

  Impl(WatchOptions o, Signaller& s, GMainContext* c)
      : opts(std::move(o)), sig(s), ctx(c != nullptr ? c : g_main_context_default()) {
    opts.validate();  // includes --relay <= 8
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
    if (preloader.joinable()) preloader.join();
    if (h264_loader.joinable()) h264_loader.join();
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
    build_pipeline();
    // Beside the DTLS key, not after it; but after our own elements, since GStreamer loads one
    // plugin at a time and gst-libav alone takes about 70 ms.
    preloader = std::thread(preload_plugins);
    std::weak_ptr<Impl> weak = weak_from_this();
    stats_timer = Timer(ctx, opts.stats_interval_ms, [weak] {
      auto self = weak.lock();
      if (!self) return false;
      self->tick();
      return true;
    });
    SignallerEvents ev;
    ev.session_requested = [weak](const std::string& s, const std::string& peer) {
      if (auto self = weak.lock()) self->child_requested(s, peer);
    };
    ev.remote_sdp = [weak](const std::string& s, const Sdp& sdp) {
      if (auto self = weak.lock()) self->remote_sdp(s, sdp);
    };
    ev.remote_ice = [weak](const std::string& s, const std::string& cand, unsigned mline) {
      if (auto self = weak.lock()) self->remote_ice(s, cand, mline);
    };
    ev.session_ended = [weak](const std::string& s) {
      if (auto self = weak.lock()) self->session_ended(s);
    };
    ev.error = [weak](const std::string& msg) {
      if (auto self = weak.lock()) self->finish(WatchEnd::error, "signalling: " + msg);
    };
    ev.placement = [weak](const std::string& parent, unsigned depth) {
      if (auto self = weak.lock()) self->placement(parent, depth);
    };
    sig.set_events(std::move(ev));
    sig.start();
  }

  // The parts that outlive parents: the tees, with counting probes on their inputs.
  void build_pipeline() {
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
    GstBus* bus = gst_pipeline_get_bus(GST_PIPELINE(pipeline));
    bus_source = gst_bus_create_watch(bus);
    g_source_set_callback(bus_source, G_SOURCE_FUNC(&Impl::bus_message), this, nullptr);
    g_source_attach(bus_source, ctx);
    gst_object_unref(bus);
  }

  void stop() {
    if (started && !finished) tick();  // the last figures, so a script's last line has the final counts
    if (started && !finished && input) sig.end_session(input->session);
    if (started) sig.stop();
    finished = true;
    teardown();
  }

  void teardown() {
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

  // Ends watching once: stops everything, then tells the owner why.
  void finish(WatchEnd why, const std::string& message, bool tell_parent = true) {
    if (finished) return;
    tick();  // the last figures, with the final counts
    current.state = "ended";
    if (input && why == WatchEnd::error && tell_parent) sig.end_session(input->session);
    sig.stop();
    finished = true;
    teardown();
    if (auto cb = on_end) cb(why, message);
  }

  static gboolean bus_message(GstBus*, GstMessage* msg, gpointer d) {
    if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) static_cast<Impl*>(d)->on_error(msg);
    return G_SOURCE_CONTINUE;
  }

  void on_error(GstMessage* msg) {
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

  // ---- signalling: the incoming session ----

  void placement(const std::string& parent, unsigned depth) {
    if (finished) return;
    tree_mode = true;
    bool moved = !current.parent.empty() && parent != current.parent;
    current.parent = parent;
    current.depth = depth;
    if (!input) return;
    g_object_set(input->webrtc, "latency", jitter_latency_ms(), nullptr);
    if (input->awaiting_placement) {
      input->awaiting_placement = false;  // the offer that came first was from this parent
    } else if (moved) {
      retire_input();  // the old parent is gone; its offer-less successor is on its way
    }
  }

  // A relay releases what it held while it waited for a retransmission all at once, up to its own
  // latency late, so each level down needs that much more room before it calls a packet lost. In
  // order, packets pass the jitter buffer at once whatever its latency; only gaps wait.
  unsigned jitter_latency_ms() const { return opts.latency_ms * std::max(1u, current.depth); }

  void remote_sdp(const std::string& session, const Sdp& sdp) {
    if (finished) return;
    if (sdp.type == SdpType::answer) {
      if (auto it = children.find(session); it != children.end()) it->second->set_answer(sdp);
      return;  // we offer only to children, so any other answer is stray
    }
    if (children.count(session) != 0 || is_pending_child(session)) return;  // children never offer
    bool renegotiation = input && session == input->session;
    bool before_placement = input && !renegotiation;
    if (before_placement && !tree_mode) {
      sig.end_session(session);  // one broadcaster at a time
      return;
    }
    std::vector<OfferedMedia> media;
    SessionDescription desc;
    try {
      media = summarize_offer(sdp.text);
      desc = parse_sdp(sdp);
    } catch (const Error& e) {
      sig.end_session(session);
      finish(WatchEnd::error, e.what(), false);
      return;
    }
    if (!h264_loader.joinable() && opts.decode) {
      for (const auto& m : media)
        if (m.receivable && std::find(m.codecs.begin(), m.codecs.end(), "H264") != m.codecs.end()) {
          h264_loader = std::thread(preload_h264_decoder);
          break;
        }
    }
    // A new parent whose placement has not come yet (the loopback and our server send the
    // placement first, but nothing in the protocol orders the two).
    if (before_placement) retire_input();
    current.state = "connecting";
    if (!renegotiation) {
      try {
        create_input(session, media);
        input->awaiting_placement = before_placement;
        if (!recording_prepared) {
          recording_prepared = true;
          auto has = [&](const char* kind) {
            return std::any_of(media.begin(), media.end(), [&](const OfferedMedia& m) { return m.kind == kind && m.receivable; });
          };
          output.prepare_recording(pipeline, has("video"), has("audio"));
        }
      } catch (const Error& e) {
        finish(WatchEnd::error, e.what());
        return;
      }
    } else {
      std::lock_guard lock(mutex);
      input->offered = media;
    }
    InputPtr in = input;
    std::weak_ptr<Impl> weak = weak_from_this();
    GMainContext* c = ctx;
    unsigned serial = in->serial;
    GstPromise* promise = make_promise([weak, c, serial](const PromiseReply& r) {
      std::string err = r.error();
      post_to(weak, c, [err, serial](Impl& self) { self.remote_offer_set(serial, err); });
    });
    g_signal_emit_by_name(in->webrtc, "set-remote-description", desc.get(), promise);
  }

  void remote_ice(const std::string& session, const std::string& candidate, unsigned mline) {
    if (finished || candidate.empty()) return;
    if (auto it = children.find(session); it != children.end()) {
      it->second->add_ice(candidate, mline);
      return;
    }
    if (input && session == input->session) {
      if (input->remote_set) {
        g_signal_emit_by_name(input->webrtc, "add-ice-candidate", mline, candidate.c_str());
      } else {
        input->pending_ice.emplace_back(candidate, mline);
      }
      return;
    }
    if (retired_sessions.count(session) != 0 || is_pending_child(session)) return;
    // Candidates may overtake the offer they belong to.
    if (early_ice.size() >= kEarlyIceSessions && early_ice.count(session) == 0) return;
    auto& list = early_ice[session];
    if (list.size() < kEarlyIcePerSession) list.emplace_back(candidate, mline);
  }

  void session_ended(const std::string& session) {
    if (finished) return;
    if (children.count(session) != 0) {
      remove_child(session);
      return;
    }
    if (is_pending_child(session)) {
      pending_children.erase(std::find(pending_children.begin(), pending_children.end(), session));
      return;
    }
    early_ice.erase(session);
    // A former parent's session ending is a move we already made, not the end of the stream.
    if (retired_sessions.count(session) != 0) return;
    if (!input || session == input->session) {
      finish(WatchEnd::broadcaster_ended, "the broadcaster ended the stream");
    }
  }

  // Our connection to the parent failed (ICE/DTLS, or its part of the pipeline). In a relay tree
  // the server moves us under someone else and we wait for that offer; otherwise we are done.
  void incoming_failed(const std::string& why) {
    if (!input || finished) return;
    std::string session = input->session;
    sig.report_failed(session);
    if (tree_mode) {
      retire_input();
      return;
    }
    finish(WatchEnd::error, "the connection to the broadcaster failed: " + why, false);
  }

  void create_input(const std::string& session, const std::vector<OfferedMedia>& media) {
    auto in = std::make_shared<Input>();
    in->session = session;
    in->serial = ++serials;
    in->offered = media;
    std::string n = std::to_string(in->serial);
    in->bin = gst_bin_new(("in" + n).c_str());
    gst_object_ref_sink(in->bin);
    in->webrtc = make_webrtcbin(opts.ice, "webrtc" + n);
    g_object_set(in->webrtc, "latency", jitter_latency_ms(), nullptr);
    gst_bin_add(GST_BIN(in->bin), in->webrtc);
    connect(in, "on-new-transceiver", &Impl::on_new_transceiver);
    connect(in, "pad-added", &Impl::on_pad_added);
    connect(in, "on-ice-candidate", &Impl::on_ice_candidate);
    connect(in, "notify::connection-state", &Impl::on_connection_state);
    if (auto it = early_ice.find(session); it != early_ice.end()) {
      in->pending_ice = std::move(it->second);
      early_ice.erase(it);
    }
    retired_sessions.erase(session);  // a former parent may become our parent again
    {
      std::lock_guard lock(mutex);
      input = in;
      current_serial = in->serial;
    }
    gst_bin_add(GST_BIN(pipeline), in->bin);
    if (!playing) {
      if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
        throw RuntimeError("the watch pipeline did not start");
      }
      playing = true;
    } else if (!gst_element_sync_state_with_parent(in->bin)) {
      throw RuntimeError("the connection to the new parent did not start");
    }
    gate.reset();  // the new parent has sent us no keyframe yet
  }

  // Unhooks the current input from the tees and removes it on a later turn of the loop; the
  // tees, our playback and the children keep running and wait for the next input.
  void retire_input() {
    if (!input) return;
    InputPtr old = input;
    {
      std::lock_guard lock(mutex);
      input.reset();
      current_serial = 0;
      for (auto [out, tee] : {std::pair{old->video_out, vtee}, std::pair{old->audio_out, atee}}) {
        if (out == nullptr) continue;
        GstPad* tsink = gst_element_get_static_pad(tee, "sink");
        GstPad* peer = gst_pad_get_peer(out);
        if (peer == tsink) gst_pad_unlink(out, tsink);
        if (peer != nullptr) gst_object_unref(peer);
        gst_object_unref(tsink);
      }
    }
    add_totals(retired_totals, old->last_totals);
    retired_sessions.insert(old->session);
    current.state = "connecting";
    retiring.push_back(old);
    post_to(weak_from_this(), ctx, [old](Impl& self) { self.drop_input(old); });
  }

  void drop_input(const InputPtr& old) {
    auto it = std::find(retiring.begin(), retiring.end(), old);
    if (it == retiring.end() || pipeline == nullptr) return;  // torn down meanwhile
    set_null_with_watchdog(old->bin, opts.shutdown_timeout_ms);
    gst_bin_remove(GST_BIN(pipeline), old->bin);
    retiring.erase(it);
  }

  template <class F>
  void connect(const InputPtr& in, const char* signal, F handler) {
    g_signal_connect_data(in->webrtc, signal, G_CALLBACK(handler), new Tag{weak_from_this(), in},
                          [](gpointer d, GClosure*) { delete static_cast<Tag*>(d); }, GConnectFlags(0));
  }

  InputPtr current_input(unsigned serial) const {
    return input && input->serial == serial ? input : nullptr;
  }

  // Main context: the offer is in. Pick codecs and directions, then answer.
  void remote_offer_set(unsigned serial, const std::string& err) {
    InputPtr in = current_input(serial);
    if (finished || !in) return;
    if (!err.empty()) {
      finish(WatchEnd::error, "the broadcaster's offer was refused: " + err);
      return;
    }
    in->remote_set = true;
    configure_transceivers(*in);
    std::weak_ptr<Impl> weak = weak_from_this();
    GMainContext* c = ctx;
    GstPromise* promise = make_promise([weak, c, serial](const PromiseReply& r) {
      std::string e = r.error();
      GstWebRTCSessionDescription* answer = nullptr;
      if (e.empty() && r.reply != nullptr) gst_structure_get(r.reply, "answer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &answer, nullptr);
      SessionDescription desc(answer, SdpDeleter{});
      post_to(weak, c, [desc, e, serial](Impl& self) { self.answer_created(serial, desc, e); });
    });
    g_signal_emit_by_name(in->webrtc, "create-answer", nullptr, promise);
  }

  // recvonly with our codecs where the peer sends something we can play; inactive for the
  // rest (a browser's unused screen-share transceivers, codecs we cannot decode). Runs for the
  // transceivers that exist now and, from on-new-transceiver, for those create-answer makes.
  void configure_transceivers(Input& in) {
    GArray* all = nullptr;
    g_signal_emit_by_name(in.webrtc, "get-transceivers", &all);
    if (all == nullptr) return;
    for (guint i = 0; i < all->len; ++i) configure(in, g_array_index(all, GstWebRTCRTPTransceiver*, i));
    g_array_unref(all);
  }

  void configure(Input& in, GstWebRTCRTPTransceiver* t) {
    guint mline = G_MAXUINT;
    g_object_get(t, "mlineindex", &mline, nullptr);
    std::optional<OfferedMedia> m;
    {
      std::lock_guard lock(mutex);
      if (mline < in.offered.size()) m = in.offered[mline];
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

  void answer_created(unsigned serial, const SessionDescription& answer, const std::string& err) {
    InputPtr in = current_input(serial);
    if (finished || !in) return;
    if (!answer) {
      finish(WatchEnd::error, "could not answer the broadcaster's offer: " + (err.empty() ? "no answer" : err));
      return;
    }
    answer_text = sdp_text(answer.get());
    sig.send_sdp(in->session, Sdp{SdpType::answer, answer_text});
    g_signal_emit_by_name(in->webrtc, "set-local-description", answer.get(), nullptr);
    for (const auto& [cand, mline] : in->pending_ice) {
      g_signal_emit_by_name(in->webrtc, "add-ice-candidate", mline, cand.c_str());
    }
    in->pending_ice.clear();
  }

  // ---- webrtcbin signals (its threads) ----

  // The impl and the input, if that input is still the current one.
  static bool is_current(const Tag& t, std::shared_ptr<Impl>& self, InputPtr& in) {
    self = t.impl.lock();
    in = t.input.lock();
    return self && in && self->current_serial.load() == in->serial;
  }

  static void on_new_transceiver(GstElement*, GstWebRTCRTPTransceiver* trans, gpointer d) {
    auto* t = static_cast<Tag*>(d);
    std::shared_ptr<Impl> self = t->impl.lock();
    InputPtr in = t->input.lock();
    if (!self || !in) return;
    bool nack = self->opts.latency_ms >= kNackMinLatencyMs;
    g_object_set(trans, "do-nack", nack ? TRUE : FALSE, nullptr);
    self->configure(*in, trans);
  }

  static void on_ice_candidate(GstElement*, guint mline, gchar* candidate, gpointer d) {
    Tag t = *static_cast<Tag*>(d);
    std::string cand = candidate != nullptr ? candidate : "";
    std::shared_ptr<Impl> self;
    InputPtr in;
    if (!is_current(t, self, in)) return;
    unsigned serial = in->serial;
    post_to(t.impl, self->ctx, [serial, cand, mline](Impl& impl) {
      InputPtr now = impl.current_input(serial);
      if (now && !impl.finished) impl.sig.add_ice(now->session, cand, mline);
    });
  }

  static void on_connection_state(GstElement* webrtc, GParamSpec*, gpointer d) {
    Tag t = *static_cast<Tag*>(d);
    GstWebRTCPeerConnectionState state{};
    g_object_get(webrtc, "connection-state", &state, nullptr);
    std::shared_ptr<Impl> self;
    InputPtr in;
    if (!is_current(t, self, in) || state != GST_WEBRTC_PEER_CONNECTION_STATE_FAILED) return;
    unsigned serial = in->serial;
    post_to(t.impl, self->ctx, [serial](Impl& impl) {
      if (impl.current_input(serial)) impl.incoming_failed("ICE/DTLS failed");
    });
  }

  static void on_pad_added(GstElement*, GstPad* pad, gpointer d) {
    Tag t = *static_cast<Tag*>(d);
    std::shared_ptr<Impl> self;
    InputPtr in;
    if (!is_current(t, self, in) || GST_PAD_DIRECTION(pad) != GST_PAD_SRC) return;
    try {
      self->attach(*in, pad);
    } catch (const std::exception& e) {
      std::string msg = e.what();
      post_to(t.impl, self->ctx, [msg](Impl& impl) { impl.finish(WatchEnd::error, msg); });
    }
  }

  // ---- branches (streaming thread) ----

  // A new track from the parent: depayload it into the tee (building our own playback branch
  // behind the tee the first time), or drain it when we do not want it.
  void attach(Input& in, GstPad* pad) {
    GstCaps* caps = gst_pad_get_current_caps(pad);
    if (caps == nullptr) caps = gst_pad_query_caps(pad, nullptr);
    const GstStructure* s = gst_caps_get_structure(caps, 0);
    std::string media = gst_structure_get_string(s, "media") != nullptr ? gst_structure_get_string(s, "media") : "";
    std::string codec =
        gst_structure_get_string(s, "encoding-name") != nullptr ? gst_structure_get_string(s, "encoding-name") : "";
    gst_caps_unref(caps);
    std::lock_guard lock(mutex);
    if (pipeline == nullptr || current_serial.load() != in.serial) return;
    if (media == "video" && !in.video_linked && depayloader(codec) != nullptr &&
        (video_codec.empty() || video_codec == codec)) {
      in.video_linked = true;
      if (video_codec.empty()) video_codec = codec;
      if (output.build_video(pipeline, vtee, codec)) arm_mux_timer_soon();
      auto chain = video_input_chain(codec);
      link_input(in, pad, chain, vtee, in.video_out);
      unref_pad(in.video_in);
      in.video_in = gst_element_get_static_pad(chain.front(), "sink");
      gst_pad_add_probe(in.video_in, GST_PAD_PROBE_TYPE_EVENT_UPSTREAM, &Impl::depay_keyframe_request, this, nullptr);
      unsigned serial = in.serial;
      post_to(weak_from_this(), ctx, [serial](Impl& self) { self.video_arrived(serial); });
    } else if (media == "audio" && !in.audio_linked && opts.audio && codec == "OPUS") {
      in.audio_linked = true;
      if (output.build_audio(pipeline, atee)) arm_mux_timer_soon();
      link_input(in, pad, {make_element("rtpopusdepay")}, atee, in.audio_out);
    } else {
      // Extra tracks: drain them, block nothing.
      GstElement* sink = live_sink("fakesink", false);
      gst_bin_add(GST_BIN(in.bin), sink);
      gst_element_sync_state_with_parent(sink);
      GstPad* sp = gst_element_get_static_pad(sink, "sink");
      link_pads(pad, sp);
      gst_object_unref(sp);
    }
  }

  GstElement* make_depay(const std::string& codec) {
    GstElement* depay = make_element(depayloader(codec));
    if (has_property(depay, "request-keyframe")) g_object_set(depay, "request-keyframe", TRUE, nullptr);
    if (has_property(depay, "wait-for-keyframe")) {
      g_object_set(depay, "wait-for-keyframe", opts.latency_ms >= kNackMinLatencyMs ? TRUE : FALSE, nullptr);
    }
    return depay;
  }

  // depay (and for H.264 a capsfilter, no parser: h264parse upstream of the tee drops further
  // keyframe requests while one is pending). Byte-stream keeps SPS/PPS in the stream, which
  // children's payloaders and decoders need after a change of parent.
  std::vector<GstElement*> video_input_chain(const std::string& codec) {
    std::vector<GstElement*> c{make_depay(codec)};
    if (codec == "H264") {
      GstElement* f = make_element("capsfilter");
      GstCaps* caps = gst_caps_from_string("video/x-h264,stream-format=byte-stream,alignment=au");
      g_object_set(f, "caps", caps, nullptr);
      gst_caps_unref(caps);
      c.push_back(f);
    }
    return c;
  }

  // Adds the chain to the input's bin and links it: webrtcbin pad -> chain -> ghost pad -> tee.
  // The tee's sink is taken over from whatever input held it before.
  void link_input(Input& in, GstPad* pad, const std::vector<GstElement*>& c, GstElement* tee, GstPad*& out) {
    for (GstElement* e : c) gst_bin_add(GST_BIN(in.bin), e);
    for (std::size_t i = 0; i + 1 < c.size(); ++i) link_elements(c[i], c[i + 1]);
    GstPad* last = gst_element_get_static_pad(c.back(), "src");
    GstPad* ghost = gst_ghost_pad_new(nullptr, last);
    gst_object_unref(last);
    gst_pad_set_active(ghost, TRUE);
    gst_element_add_pad(in.bin, ghost);
    unref_pad(out);
    out = GST_PAD(gst_object_ref(ghost));
    GstPad* tsink = gst_element_get_static_pad(tee, "sink");
    if (GstPad* old = gst_pad_get_peer(tsink)) {
      gst_pad_unlink(old, tsink);
      gst_object_unref(old);
    }
    GstPadLinkReturn r = gst_pad_link(ghost, tsink);
    gst_object_unref(tsink);
    if (r != GST_PAD_LINK_OK) {
      throw RuntimeError(std::string("cannot link the received stream to the tee: ") + gst_pad_link_get_name(r));
    }
    for (auto it = c.rbegin(); it != c.rend(); ++it) gst_element_sync_state_with_parent(*it);
    GstPad* sink = gst_element_get_static_pad(c.front(), "sink");
    r = gst_pad_link(pad, sink);
    gst_object_unref(sink);
    if (r != GST_PAD_LINK_OK) {
      throw RuntimeError(std::string("cannot link the received stream: ") + gst_pad_link_get_name(r));
    }
  }

  // ---- probes (streaming threads) ----

  static GstPadProbeReturn into_video_tee(GstPad*, GstPadProbeInfo*, gpointer d) {
    auto* self = static_cast<Impl*>(d);
    self->forwarded.fetch_add(1, std::memory_order_relaxed);
    if (!self->opts.decode) self->output.count_undecoded_frame();
    return GST_PAD_PROBE_OK;
  }

  static GstPadProbeReturn into_audio_tee(GstPad*, GstPadProbeInfo*, gpointer d) {
    auto* self = static_cast<Impl*>(d);
    if (!self->opts.decode) self->output.count_undecoded_audio();
    return GST_PAD_PROBE_OK;
  }

  // The depayloader asks for a keyframe on every packet it drops while it waits for one; each
  // ask becomes an early RTCP packet that crowds out NACKs. Its asks go through our gate instead,
  // which re-sends while they keep coming, so a lost request is repeated.
  static GstPadProbeReturn depay_keyframe_request(GstPad*, GstPadProbeInfo* info, gpointer d) {
    GstEvent* e = GST_PAD_PROBE_INFO_EVENT(info);
    if (!gst_video_event_is_force_key_unit(e)) return GST_PAD_PROBE_OK;
    const GstStructure* s = gst_event_get_structure(e);
    if (s != nullptr && gst_structure_has_field(s, kGatedField)) return GST_PAD_PROBE_OK;  // ours
    auto* self = static_cast<Impl*>(d);
    post_to(self->weak_from_this(), self->ctx, [](Impl& impl) { impl.request_keyframe(); });
    return GST_PAD_PROBE_DROP;
  }

  // ---- relay children (main context) ----

  bool is_pending_child(const std::string& session) const {
    return std::find(pending_children.begin(), pending_children.end(), session) != pending_children.end();
  }

  std::string tee_codec() {
    std::lock_guard lock(mutex);
    return video_codec;
  }

  void child_requested(const std::string& session, const std::string&) {
    if (finished) return;
    if (opts.relay_slots == 0) {
      sig.end_session(session);  // we do not relay
      return;
    }
    if (children.count(session) != 0) remove_child(session);  // asked again: a fresh offer
    if (is_pending_child(session)) return;
    if (children.size() + pending_children.size() >= opts.relay_slots) {
      sig.end_session(session);  // the server gave us more than we offered to serve
      return;
    }
    if (tee_codec().empty()) {
      pending_children.push_back(session);  // built once we know what we relay
      return;
    }
    add_child(session);
  }

  void add_child(const std::string& session) {
    std::weak_ptr<Impl> weak = weak_from_this();
    RelayBranchEvents ev;
    ev.offer = [weak, session](const Sdp& offer) {
      if (auto self = weak.lock()) self->sig.send_sdp(session, offer);
    };
    ev.ice = [weak, session](const std::string& cand, unsigned mline) {
      if (auto self = weak.lock()) self->sig.add_ice(session, cand, mline);
    };
    // A child that just connected needs a keyframe now, not at the next periodic one.
    ev.connected = [weak] {
      if (auto self = weak.lock()) self->request_keyframe();
    };
    ev.failed = [weak, session](const std::string& why) {
      if (auto self = weak.lock()) self->fail_child(session, why);
    };
    ev.keyframe_wanted = [weak] {
      if (auto self = weak.lock()) self->request_keyframe();
    };
    auto branch = RelayBranch::create(session, ++child_index, ctx, std::move(ev));
    RelayBranchConfig cfg;
    cfg.video_codec = tee_codec();
    cfg.audio = relay_audio;
    cfg.ice = opts.ice;
    cfg.shutdown_timeout_ms = opts.shutdown_timeout_ms;
    try {
      branch->attach(pipeline, vtee, atee, cfg);
    } catch (const Error&) {
      sig.end_session(session);
      return;
    }
    children[session] = branch;
  }

  void fail_child(const std::string& session, const std::string&) {
    if (children.count(session) == 0) return;
    sig.end_session(session);
    remove_child(session);
  }

  void remove_child(const std::string& session) {
    auto it = children.find(session);
    if (it == children.end()) return;
    it->second->detach();
    children.erase(it);
  }

  // The first video from an input: now we know what we relay, so waiting children can join. No
  // keyframe request here: a parent sends one to each child that connects (the broadcaster
  // forces it, a relay asks its own parent), and the depayloader asks if it has to wait.
  void video_arrived(unsigned serial) {
    InputPtr in = current_input(serial);
    if (finished || !in) return;
    if (!relay_audio) {
      relay_audio = opts.audio && std::any_of(in->offered.begin(), in->offered.end(), [](const OfferedMedia& m) {
                      return m.kind == "audio" && m.receivable;
                    });
    }
    auto waiting = std::move(pending_children);
    pending_children.clear();
    for (const auto& s : waiting) add_child(s);
  }

  void request_keyframe() {
    if (finished) return;
    auto d = gate.request(monotonic_us());
    if (d.verdict == KeyframeGate::Verdict::send_now) {
      send_keyframe_request();
    } else if (d.verdict == KeyframeGate::Verdict::send_later) {
      std::weak_ptr<Impl> weak = weak_from_this();
      keyframe_timer = Timer(ctx, unsigned(d.delay_us / 1000 + 1), [weak] {
        if (auto self = weak.lock()) {
          self->gate.sent(monotonic_us());
          self->send_keyframe_request();
        }
        return false;
      });
    }
  }

  // Up through the incoming webrtcbin, whose RTP session turns it into a PLI to our parent.
  void send_keyframe_request() {
    GstPad* pad = nullptr;
    {
      std::lock_guard lock(mutex);
      if (input && input->video_in != nullptr) pad = GST_PAD(gst_object_ref(input->video_in));
    }
    if (pad == nullptr) return;
    // all-headers FALSE makes rtpsession send a PLI: a FIR would repeat its sequence number
    // (the count never changes), and senders such as Chrome ignore a repeated FIR.
    GstEvent* e = gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE, FALSE, 0);
    gst_structure_set(gst_event_writable_structure(e), kGatedField, G_TYPE_BOOLEAN, TRUE, nullptr);
    gst_pad_push_event(pad, e);
    gst_object_unref(pad);
    keyframes_sent.fetch_add(1, std::memory_order_relaxed);
  }

  // ---- recording: give up on tracks that never came ----

  // Any thread: the recording got its first track; give the others kMuxWaitMs.
  void arm_mux_timer_soon() {
    post_to(weak_from_this(), ctx, [](Impl& self) { self.arm_mux_timer(); });
  }

  void arm_mux_timer() {
    if (mux_timer.active() || finished) return;
    std::weak_ptr<Impl> weak = weak_from_this();
    mux_timer = Timer(ctx, kMuxWaitMs, [weak] {
      if (auto self = weak.lock()) self->output.release_unused_tracks();
      return false;
    });
  }

  // ---- stats ----

  void tick() {
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

  void update_rtp(const RtpTotals& now_totals) {
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

  std::vector<std::string> element_factories() const {
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
