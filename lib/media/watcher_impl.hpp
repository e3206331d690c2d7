// media/watcher_impl: the private state of a Watcher (Watcher::Impl), shared by the files that
// implement it: watcher.cpp (lifecycle, stats and the public API), watcher_session.cpp (the
// incoming session: signalling and webrtcbin callbacks) and watcher_tracks.cpp (depayloading
// into the tees, probes, relay children and recording).
#pragma once

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
#include "media/watcher.hpp"
#include "media/webrtc_util.hpp"
#include "util/error.hpp"

namespace p2p::media {
namespace watch_impl {

// NACK below this jitter-buffer latency causes spurious loss events that, with
// wait-for-keyframe, stall video (measured by the prototype).
inline constexpr unsigned kNackMinLatencyMs = 50;
inline constexpr unsigned kMuxWaitMs = 5000;  // how long a recording waits for a track that never comes
// Keyframe requests to our parent at most this often; the broadcaster holds its own at 500 ms.
inline constexpr std::int64_t kKeyframeGapUs = 300 * 1000;
// Marks the keyframe requests that already passed the gate, so the depayloader's probe lets them by.
inline constexpr const char* kGatedField = "p2p-gated";
// Candidates for sessions whose offer has not come yet: bounded, the peer may be hostile.
inline constexpr std::size_t kEarlyIceSessions = 8;
inline constexpr std::size_t kEarlyIcePerSession = 200;

// Caps for the transceiver: the offer's codecs we can receive, in our order of preference.
inline GstCaps* receive_preferences(const OfferedMedia& m) {
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

inline const char* depayloader(const std::string& codec) {
  if (codec == "VP8") return "rtpvp8depay";
  if (codec == "H264") return "rtph264depay";
  if (codec == "VP9") return "rtpvp9depay";
  return nullptr;
}

inline bool is_inside(GstObject* obj, GstElement* bin) {
  return bin != nullptr && obj != nullptr && (obj == GST_OBJECT(bin) || gst_object_has_as_ancestor(obj, GST_OBJECT(bin)));
}

inline void add_totals(RtpTotals& into, const RtpTotals& t) {
  into.bytes_received += t.bytes_received;
  into.packets_received += t.packets_received;
  into.packets_lost += t.packets_lost;
}

}  // namespace watch_impl

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
  KeyframeGate gate{watch_impl::kKeyframeGapUs};
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

  // ---- lifecycle ----

  void start();

  // The parts that outlive parents: the tees, with counting probes on their inputs.
  void build_pipeline();

  void stop();

  void teardown();

  // Ends watching once: stops everything, then tells the owner why.
  void finish(WatchEnd why, const std::string& message, bool tell_parent = true);

  static gboolean bus_message(GstBus*, GstMessage* msg, gpointer d);

  void on_error(GstMessage* msg);

  // ---- signalling: the incoming session ----

  void placement(const std::string& parent, unsigned depth);

  // A relay releases what it held while it waited for a retransmission all at once, up to its own
  // latency late, so each level down needs that much more room before it calls a packet lost. In
  // order, packets pass the jitter buffer at once whatever its latency; only gaps wait.
  unsigned jitter_latency_ms() const { return opts.latency_ms * std::max(1u, current.depth); }

  void remote_sdp(const std::string& session, const Sdp& sdp);

  void remote_ice(const std::string& session, const std::string& candidate, unsigned mline);

  void session_ended(const std::string& session);

  // Our connection to the parent failed (ICE/DTLS, or its part of the pipeline). In a relay tree
  // the server moves us under someone else and we wait for that offer; otherwise we are done.
  void incoming_failed(const std::string& why);

  void create_input(const std::string& session, const std::vector<OfferedMedia>& media);

  // Unhooks the current input from the tees and removes it on a later turn of the loop; the
  // tees, our playback and the children keep running and wait for the next input.
  void retire_input();

  void drop_input(const InputPtr& old);

  template <class F>
  void connect(const InputPtr& in, const char* signal, F handler) {
    g_signal_connect_data(in->webrtc, signal, G_CALLBACK(handler), new Tag{weak_from_this(), in},
                          [](gpointer d, GClosure*) { delete static_cast<Tag*>(d); }, GConnectFlags(0));
  }

  InputPtr current_input(unsigned serial) const {
    return input && input->serial == serial ? input : nullptr;
  }

  // Main context: the offer is in. Pick codecs and directions, then answer.
  void remote_offer_set(unsigned serial, const std::string& err);

  // recvonly with our codecs where the peer sends something we can play; inactive for the
  // rest (a browser's unused screen-share transceivers, codecs we cannot decode). Runs for the
  // transceivers that exist now and, from on-new-transceiver, for those create-answer makes.
  void configure_transceivers(Input& in);

  void configure(Input& in, GstWebRTCRTPTransceiver* t);

  void answer_created(unsigned serial, const SessionDescription& answer, const std::string& err);

  // ---- webrtcbin signals (its threads) ----

  // The impl and the input, if that input is still the current one.
  static bool is_current(const Tag& t, std::shared_ptr<Impl>& self, InputPtr& in) {
    self = t.impl.lock();
    in = t.input.lock();
    return self && in && self->current_serial.load() == in->serial;
  }

  static void on_new_transceiver(GstElement*, GstWebRTCRTPTransceiver* trans, gpointer d);

  static void on_ice_candidate(GstElement*, guint mline, gchar* candidate, gpointer d);

  static void on_connection_state(GstElement* webrtc, GParamSpec*, gpointer d);

  static void on_pad_added(GstElement*, GstPad* pad, gpointer d);

  // ---- branches (streaming thread) ----

  // A new track from the parent: depayload it into the tee (building our own playback branch
  // behind the tee the first time), or drain it when we do not want it.
  void attach(Input& in, GstPad* pad);

  GstElement* make_depay(const std::string& codec);

  // depay (and for H.264 a capsfilter, no parser: h264parse upstream of the tee drops further
  // keyframe requests while one is pending). Byte-stream keeps SPS/PPS in the stream, which
  // children's payloaders and decoders need after a change of parent.
  std::vector<GstElement*> video_input_chain(const std::string& codec);

  // Adds the chain to the input's bin and links it: webrtcbin pad -> chain -> ghost pad -> tee.
  // The tee's sink is taken over from whatever input held it before.
  void link_input(Input& in, GstPad* pad, const std::vector<GstElement*>& c, GstElement* tee, GstPad*& out);

  // ---- probes (streaming threads) ----

  static GstPadProbeReturn into_video_tee(GstPad*, GstPadProbeInfo*, gpointer d);

  static GstPadProbeReturn into_audio_tee(GstPad*, GstPadProbeInfo*, gpointer d);

  // The depayloader asks for a keyframe on every packet it drops while it waits for one; each
  // ask becomes an early RTCP packet that crowds out NACKs. Its asks go through our gate instead,
  // which re-sends while they keep coming, so a lost request is repeated.
  static GstPadProbeReturn depay_keyframe_request(GstPad*, GstPadProbeInfo* info, gpointer d);

  // ---- relay children (main context) ----

  bool is_pending_child(const std::string& session) const {
    return std::find(pending_children.begin(), pending_children.end(), session) != pending_children.end();
  }

  std::string tee_codec();

  void child_requested(const std::string& session, const std::string&);

  void add_child(const std::string& session);

  void fail_child(const std::string& session, const std::string&);

  void remove_child(const std::string& session);

  // The first video from an input: now we know what we relay, so waiting children can join. No
  // keyframe request here: a parent sends one to each child that connects (the broadcaster
  // forces it, a relay asks its own parent), and the depayloader asks if it has to wait.
  void video_arrived(unsigned serial);

  void request_keyframe();

  // Up through the incoming webrtcbin, whose RTP session turns it into a PLI to our parent.
  void send_keyframe_request();

  // ---- recording: give up on tracks that never came ----

  // Any thread: the recording got its first track; give the others kMuxWaitMs.
  void arm_mux_timer_soon();

  void arm_mux_timer();

  // ---- stats ----

  void tick();

  void update_rtp(const RtpTotals& now_totals);

  std::vector<std::string> element_factories() const;
};

}  // namespace p2p::media
