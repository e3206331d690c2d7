// media/broadcaster_impl: the private state of a Broadcaster (Broadcaster::Impl), shared by the
// files that implement it: broadcaster.cpp (the shared pipeline, stats, rate control and the
// public API) and broadcaster_peers.cpp (one branch and webrtcbin per watcher, and the
// signalling that drives it).
#pragma once

#include <gst/video/video.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include "media/broadcaster.hpp"
#include "media/dtls_key.hpp"
#include "media/gst_util.hpp"
#include "media/webrtc_util.hpp"
#include "util/error.hpp"

namespace p2p::media {
namespace broadcast_impl {

inline constexpr int kVideoPt = 96;
inline constexpr int kH264Pt = 102;
inline constexpr int kOpusPt = 111;
// Keyframes at most this often: with loss, every watcher's depayloader asks for one per gap,
// and a keyframe per request would multiply the bitrate exactly when the network is worst.
inline constexpr std::int64_t kMinKeyframeGapUs = 500 * 1000;
// A watcher branch's gate (see Impl::gate): nothing passes, audio passes and video waits for a
// keyframe, everything passes.
inline constexpr int kGateClosed = 0;
inline constexpr int kGateKeyframe = 1;
inline constexpr int kGateOpen = 2;

// What each watcher's transceiver offers; the feedback fields become a=rtcp-fb lines.
// The payloader's SSRC goes into the caps so the offer carries a=ssrc and the RTX FID group
// (see send_preferences): without them the watcher never asks for retransmissions.
inline GstCaps* video_preferences(VideoCodec codec, std::uint32_t ssrc) {
  const char* fb = ",rtcp-fb-nack=(boolean)true,rtcp-fb-nack-pli=(boolean)true,rtcp-fb-ccm-fir=(boolean)true";
  std::string caps = codec == VideoCodec::vp8
                         ? "application/x-rtp,media=video,encoding-name=VP8,clock-rate=90000,payload=" +
                               std::to_string(kVideoPt)
                         : "application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,"
                           "packetization-mode=(string)1,payload=" + std::to_string(kH264Pt);
  return gst_caps_from_string((caps + fb + ",ssrc=(uint)" + std::to_string(ssrc)).c_str());
}

inline GstCaps* audio_preferences() {
  return gst_caps_from_string(("application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,"
                               "encoding-params=(string)2,payload=" + std::to_string(kOpusPt)).c_str());
}

}  // namespace broadcast_impl

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
    std::shared_ptr<std::atomic<int>> gate = std::make_shared<std::atomic<int>>(broadcast_impl::kGateClosed);
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
  std::atomic<std::int64_t> last_keyframe_us{-broadcast_impl::kMinKeyframeGapUs};
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
  PeerPtr find(const std::string& session, unsigned serial) {
    auto it = peers.find(session);
    if (it == peers.end() || it->second->serial != serial) return nullptr;
    return it->second;
  }

  // ---- the shared pipeline ----

  void build();

  void install_probes();

  static GstPadProbeReturn count_frame(GstPad*, GstPadProbeInfo* info, gpointer d);

  // Passes the PLI/FIR keyframe requests rtpsession turns into events at most every
  // kMinKeyframeGapUs; one that comes sooner is held and sent when the gap is over, so no
  // requester is forgotten. Ours for a joining watcher always pass. Also notices the end of a
  // file source.
  static GstPadProbeReturn watch_events(GstPad*, GstPadProbeInfo* info, gpointer d);

  static GstPadProbeReturn raw_frame(GstPad* pad, GstPadProbeInfo* info, gpointer d);

  void start();

  std::string pop_error();

  void stop();

  void teardown();

  void fatal(const std::string& msg);

  void source_ended();

  static gboolean bus_message(GstBus*, GstMessage* msg, gpointer d);

  void on_bus(GstMessage* msg);

  // ---- per-watcher branches ----

  // Until the peer is connected webrtcbin blocks its RTP path: it would stall the tee (and with
  // a queue per branch, release up to 500 ms of stale frames ahead of the keyframe forced on
  // connect, which the decoder drops before asking for yet another keyframe). The gate drops
  // media until then, and video until the next keyframe starts; sticky events (caps) still pass.
  static GstPadProbeReturn gate(GstPad*, GstPadProbeInfo* info, gpointer d);

  void add_gate(GstPad* sink, const PeerPtr& p, bool video);

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

  static GstPadProbeReturn thin_out(GstPad*, GstPadProbeInfo* info, gpointer d);

  static void add_loss(GstPad* pad, double fraction);

  // A new sendonly transceiver's sink pad becomes the bin's pad (ghost_name), with the gate
  // (and the simulated loss) on it. No queue of its own: its worker's thread pushes into it, and
  // nothing there blocks once the gate is open (nicesink drops rather than waits).
  // NACK/RTX on video only: Chrome refuses an offer whose audio m-line has an RTX FID group.
  void add_sender(const PeerPtr& p, GstCaps* prefs, const char* ghost_name);

  template <class F>
  void connect(GstElement* webrtc, const char* signal, F handler, const PeerPtr& p) {
    g_signal_connect_data(webrtc, signal, G_CALLBACK(handler), new Tag{weak_from_this(), p->session, p->serial},
                          [](gpointer d, GClosure*) { delete static_cast<Tag*>(d); }, GConnectFlags(0));
  }

  void add_peer(const std::string& session, const std::string& name);

  void build_peer(const PeerPtr& p);

  std::size_t least_loaded_worker() const {
    std::vector<int> load(vtees.size(), 0);
    for (const auto& [s, p] : peers) {
      if (p->vtee_pad != nullptr && p->worker < load.size()) ++load[p->worker];
    }
    return std::size_t(std::min_element(load.begin(), load.end()) - load.begin());
  }

  static void release_tee_pad(GstPad*& pad);

  void release_tee_pads(Peer& p);

  void notify_session(const std::string& session, const std::string& state) {
    if (auto cb = on_session) cb(session, state);
  }

  // ---- webrtcbin signals (its threads) -> main context ----

  static void on_negotiation_needed(GstElement*, gpointer d);

  static void on_ice_candidate(GstElement*, guint mline, gchar* candidate, gpointer d);

  static void on_connection_state(GstElement* webrtc, GParamSpec*, gpointer d);

  // ---- main-context handlers ----

  void make_offer(const std::string& session, unsigned serial);

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

  void remote_sdp(const std::string& session, const Sdp& sdp);

  void remote_ice(const std::string& session, const std::string& candidate, unsigned mline);

  void connection_changed(const std::string& session, unsigned serial, GstWebRTCPeerConnectionState state);

  // Any thread: one force-key-unit on the main context after delay_us.
  void send_keyframe_later(std::int64_t delay_us);

  void force_key_unit(bool for_join = false);

  void fail_peer(const std::string& session, const std::string& why);

  // Unlinks the branch from the tees when they are between buffers, then drops it on the main
  // context; the other branches never stop.
  struct Detach {
    std::weak_ptr<Impl> impl;
    GMainContext* ctx = nullptr;
    PeerPtr peer;
    std::atomic<int> left{0};

    void one_done() {
      if (--left > 0) return;
      post_while_alive(impl, ctx, [peer = peer](Impl& self) { self.drop_branch(peer); });
    }
  };
  using DetachPtr = std::shared_ptr<Detach>;

  static GstPadProbeReturn unlink_when_idle(GstPad* tee_pad, GstPadProbeInfo*, gpointer d);

  void remove_peer(const std::string& session, const std::string& state);

  void drop_branch(const PeerPtr& p);

  // ---- stats and rate control ----

  void tick();

  void adapt(double loss);

  // Loss from the receiver reports: the larger of RTCP's last fraction lost (which may be about
  // audio only) and the growth of the cumulative count against what we sent since last time.
  static void update_peer_stats(Peer& p, const RtpTotals& t);
};

}  // namespace p2p::media
