// media/relay_branch: building, signalling and removing one child's sendonly bin.
#include "media/relay_branch.hpp"

#include <gst/video/video.h>

#include "media/gst_util.hpp"
#include "util/error.hpp"

namespace p2p::media {
namespace {

using Weak = std::weak_ptr<RelayBranch>;

void delete_weak(gpointer d) { delete static_cast<Weak*>(d); }

GstElement* make_payloader(const std::string& codec) {
  GstElement* pay = nullptr;
  if (codec == "VP8" || codec == "VP9") {
    pay = make_element(codec == "VP8" ? "rtpvp8pay" : "rtpvp9pay");
    g_object_set(pay, "picture-id-mode", 2 /* 15-bit */, nullptr);
  } else if (codec == "H264") {
    // SPS/PPS before every IDR: a child that joins or recovers decodes from the next keyframe.
    GError* err = nullptr;
    pay = gst_parse_bin_from_description(
        h264_payload_launch("pay", send_payload_type(codec), random_ssrc()).c_str(), TRUE, &err);
    if (pay == nullptr) {
      std::string why = err != nullptr ? err->message : "unknown error";
      g_clear_error(&err);
      throw RuntimeError("cannot relay H.264: " + why);
    }
    return pay;
  } else if (codec == "OPUS") {
    pay = make_element("rtpopuspay");
  } else {
    throw RuntimeError("cannot relay " + codec + " video");
  }
  if (codec != "OPUS") g_object_set(pay, "mtu", 1200u, nullptr);
  g_object_set(pay, "pt", guint(send_payload_type(codec)), "ssrc", guint(random_ssrc()), nullptr);
  return pay;
}

GstElement* make_branch_queue() {
  GstElement* q = make_element("queue");
  // Leaky: a stuck child must never hold up the tee, and so our own playback and the others.
  g_object_set(q, "leaky", 2, "max-size-buffers", 0u, "max-size-bytes", 0u, "max-size-time",
               guint64(500 * GST_MSECOND), nullptr);
  return q;
}

}  // namespace

struct RelayBranch::Tag {
  Weak branch;
};

// Counts the tee pads still to unlink; the last one schedules the removal.
struct RelayBranch::Detach {
  std::shared_ptr<RelayBranch> branch;
  std::atomic<int> left{0};

  void one_done() {
    if (--left > 0) return;
    auto b = branch;
    post(b->ctx_, [b] { b->drop(); });
  }
};

std::shared_ptr<RelayBranch> RelayBranch::create(std::string session, unsigned index, GMainContext* ctx,
                                                 RelayBranchEvents events) {
  return std::shared_ptr<RelayBranch>(new RelayBranch(std::move(session), index, ctx, std::move(events)));
}

RelayBranch::RelayBranch(std::string session, unsigned index, GMainContext* ctx, RelayBranchEvents events)
    : session_(std::move(session)), index_(index), ctx_(ctx), events_(std::move(events)) {}

RelayBranch::~RelayBranch() {
  if (vtee_pad_ != nullptr) gst_object_unref(vtee_pad_);
  if (atee_pad_ != nullptr) gst_object_unref(atee_pad_);
  if (bin_ != nullptr) gst_object_unref(bin_);
}

void RelayBranch::post_event(std::function<void(RelayBranch&)> fn) {
  Weak weak = weak_from_this();
  post(ctx_, [weak, fn = std::move(fn)] {
    auto self = weak.lock();
    if (self && !self->closed_) fn(*self);
  });
}

void RelayBranch::attach(GstElement* pipeline, GstElement* vtee, GstElement* atee, const RelayBranchConfig& config) {
  pipeline_ = pipeline;
  vtee_ = vtee;
  atee_ = config.audio ? atee : nullptr;
  shutdown_timeout_ms_ = config.shutdown_timeout_ms;
  try {
    build(config);
  } catch (const Error&) {
    closed_ = true;
    release_tee_pads();
    if (bin_ != nullptr && GST_OBJECT_PARENT(bin_) != nullptr) {
      gst_element_set_state(bin_, GST_STATE_NULL);
      gst_bin_remove(GST_BIN(pipeline_), bin_);
    }
    pipeline_ = nullptr;
    throw;
  }
}

void RelayBranch::build(const RelayBranchConfig& config) {
  std::string n = std::to_string(index_);
  bin_ = gst_bin_new(("child" + n).c_str());
  gst_object_ref_sink(bin_);  // ours, besides the pipeline's
  webrtc_ = make_webrtcbin(config.ice, "cwebrtc" + n);
  gst_bin_add(GST_BIN(bin_), webrtc_);
  GstElement* vpay = make_payloader(config.video_codec);
  add_sender(vpay, config.video_codec, "video");
  // The child's PLI/FIR reaches us as a force-key-unit event going up from its webrtcbin: it is
  // answered upstream by the watcher (once, rate-limited), not by each payloader on its own.
  GstPad* src = gst_element_get_static_pad(vpay, "src");
  gst_pad_add_probe(src, GST_PAD_PROBE_TYPE_EVENT_UPSTREAM, &RelayBranch::keyframe_probe,
                    new Weak(weak_from_this()), delete_weak);
  gst_object_unref(src);
  GstPad* sink = gst_element_get_static_pad(vpay, "sink");
  gst_pad_add_probe(sink, GST_PAD_PROBE_TYPE_BUFFER, &RelayBranch::count_probe, new Weak(weak_from_this()),
                    delete_weak);
  gst_object_unref(sink);
  if (atee_ != nullptr) add_sender(make_payloader("OPUS"), "OPUS", "audio");
  connect("on-negotiation-needed", &RelayBranch::on_negotiation_needed);
  connect("on-ice-candidate", &RelayBranch::on_ice_candidate);
  connect("notify::connection-state", &RelayBranch::on_connection_state);
  gst_bin_add(GST_BIN(pipeline_), bin_);
  if (!gst_element_sync_state_with_parent(bin_)) throw RuntimeError("a relay branch did not start");
  // Linked last, so no buffer reaches the webrtcbin before its transceivers are set up.
  vtee_pad_ = link_tee(vtee_, "video");
  if (atee_ != nullptr) atee_pad_ = link_tee(atee_, "audio");
}

// Once a child's webrtcbin refuses data (FLUSHING or an error while its connection closes),
// its queue pauses and hands that result to every later push: the tee would pass it to our
// depayloader and the whole relay would stop. So a branch whose queue has stopped swallows its
// buffers instead, and reports itself failed once.
struct RelayBranch::Shield {
  GstPad* queue_src;  // ours
  Weak branch;
  std::atomic<bool> reported{false};
  ~Shield() { gst_object_unref(queue_src); }
};

GstPadProbeReturn RelayBranch::shield_probe(GstPad*, GstPadProbeInfo*, gpointer d) {
  auto* shield = static_cast<Shield*>(d);
  GstFlowReturn last = GST_PAD_LAST_FLOW_RETURN(shield->queue_src);
  if (last == GST_FLOW_OK) return GST_PAD_PROBE_OK;
  if (!shield->reported.exchange(true)) {
    if (auto self = shield->branch.lock()) {
      std::string why = std::string("the child's connection stopped taking data (") + gst_flow_get_name(last) + ")";
      self->post_event([why](RelayBranch& b) {
        if (b.events_.failed) b.events_.failed(why);
      });
    }
  }
  return GST_PAD_PROBE_DROP;
}

// queue -> payloader -> a new sendonly transceiver; the queue's sink becomes the bin's pad.
void RelayBranch::add_sender(GstElement* payloader, const std::string& codec, const char* ghost) {
  GstElement* queue = make_branch_queue();
  gst_bin_add_many(GST_BIN(bin_), queue, payloader, nullptr);
  link_elements(queue, payloader);
  {
    GstPad* qsink = gst_element_get_static_pad(queue, "sink");
    auto* shield = new Shield{gst_element_get_static_pad(queue, "src"), weak_from_this()};
    gst_pad_add_probe(qsink, GstPadProbeType(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST),
                      &RelayBranch::shield_probe, shield, [](gpointer d) { delete static_cast<Shield*>(d); });
    gst_object_unref(qsink);
  }
  GstPad* sink = gst_element_request_pad_simple(webrtc_, "sink_%u");
  if (sink == nullptr) throw RuntimeError("webrtcbin refused a sink pad for a relay child");
  GstWebRTCRTPTransceiver* trans = nullptr;
  g_object_get(sink, "transceiver", &trans, nullptr);
  if (trans != nullptr) {
    guint ssrc = 0;
    // H.264's payloader is a bin (see make_payloader): ask its rtph264pay.
    GstElement* pay = GST_IS_BIN(payloader) ? gst_bin_get_by_name(GST_BIN(payloader), "pay")
                                            : GST_ELEMENT(gst_object_ref(payloader));
    if (pay != nullptr) {
      g_object_get(pay, "ssrc", &ssrc, nullptr);
      gst_object_unref(pay);
    }
    GstCaps* prefs = send_preferences(codec, ssrc);
    // NACK/RTX on video only: Chrome refuses an offer whose audio m-line has an RTX FID group, and
    // browsers are leaves too.
    g_object_set(trans, "direction", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY, "codec-preferences", prefs,
                 "do-nack", codec == "OPUS" ? FALSE : TRUE, nullptr);
    gst_caps_unref(prefs);
    gst_object_unref(trans);
  }
  GstPad* out = gst_element_get_static_pad(payloader, "src");
  GstPadLinkReturn r = gst_pad_link(out, sink);
  gst_object_unref(out);
  gst_object_unref(sink);
  if (r != GST_PAD_LINK_OK) {
    throw RuntimeError(std::string("cannot link a relay payloader to webrtcbin: ") + gst_pad_link_get_name(r));
  }
  GstPad* qsink = gst_element_get_static_pad(queue, "sink");
  gst_element_add_pad(bin_, gst_ghost_pad_new(ghost, qsink));
  gst_object_unref(qsink);
}

GstPad* RelayBranch::link_tee(GstElement* tee, const char* ghost) {
  return link_tee_to(tee, bin_, ghost, "a relay branch");
}

void RelayBranch::release_tee_pads() {
  if (vtee_pad_ != nullptr) {
    gst_element_release_request_pad(vtee_, vtee_pad_);
    gst_object_unref(vtee_pad_);
    vtee_pad_ = nullptr;
  }
  if (atee_pad_ != nullptr) {
    gst_element_release_request_pad(atee_, atee_pad_);
    gst_object_unref(atee_pad_);
    atee_pad_ = nullptr;
  }
}

template <class F>
void RelayBranch::connect(const char* signal, F handler) {
  g_signal_connect_data(webrtc_, signal, G_CALLBACK(handler), new Tag{weak_from_this()},
                        [](gpointer d, GClosure*) { delete static_cast<Tag*>(d); }, GConnectFlags(0));
}

bool RelayBranch::owns(GstObject* obj) const {
  return bin_ != nullptr && obj != nullptr &&
         (obj == GST_OBJECT(bin_) || gst_object_has_as_ancestor(obj, GST_OBJECT(bin_)));
}

// ---- removal ----

void RelayBranch::detach() {
  if (closed_) return;
  closed_ = true;
  if (pipeline_ == nullptr) return;
  auto det = std::make_shared<Detach>();
  det->branch = shared_from_this();
  det->left = 1 + (vtee_pad_ != nullptr) + (atee_pad_ != nullptr);
  for (GstPad* pad : {vtee_pad_, atee_pad_}) {
    if (pad == nullptr) continue;
    gst_pad_add_probe(
        pad, GST_PAD_PROBE_TYPE_IDLE,
        [](GstPad* tee_pad, GstPadProbeInfo*, gpointer d) {
          if (GstPad* peer = gst_pad_get_peer(tee_pad)) {
            gst_pad_unlink(tee_pad, peer);
            gst_object_unref(peer);
          }
          (*static_cast<std::shared_ptr<Detach>*>(d))->one_done();
          return GST_PAD_PROBE_REMOVE;
        },
        new std::shared_ptr<Detach>(det), [](gpointer d) { delete static_cast<std::shared_ptr<Detach>*>(d); });
  }
  det->one_done();  // our own share, so a probe that fires at once cannot finish early
}

void RelayBranch::drop() {
  if (pipeline_ == nullptr) return;  // the pipeline went down meanwhile, and the bin with it
  release_tee_pads();
  if (bin_ != nullptr && GST_OBJECT_PARENT(bin_) == GST_OBJECT(pipeline_)) {
    set_null_with_watchdog(bin_, shutdown_timeout_ms_);
    gst_bin_remove(GST_BIN(pipeline_), bin_);
  }
  pipeline_ = nullptr;
  webrtc_ = nullptr;
}

void RelayBranch::forget() {
  closed_ = true;
  if (pipeline_ != nullptr) release_tee_pads();
  pipeline_ = nullptr;
  webrtc_ = nullptr;
}

// ---- signalling ----

void RelayBranch::on_negotiation_needed(GstElement*, gpointer d) {
  if (auto self = static_cast<Tag*>(d)->branch.lock()) {
    self->post_event([](RelayBranch& b) { b.make_offer(); });
  }
}

void RelayBranch::on_ice_candidate(GstElement*, guint mline, gchar* candidate, gpointer d) {
  std::string cand = candidate != nullptr ? candidate : "";
  if (auto self = static_cast<Tag*>(d)->branch.lock()) {
    self->post_event([cand, mline](RelayBranch& b) {
      if (b.events_.ice) b.events_.ice(cand, mline);
    });
  }
}

void RelayBranch::on_connection_state(GstElement* webrtc, GParamSpec*, gpointer d) {
  GstWebRTCPeerConnectionState state{};
  g_object_get(webrtc, "connection-state", &state, nullptr);
  auto self = static_cast<Tag*>(d)->branch.lock();
  if (!self) return;
  self->post_event([state](RelayBranch& b) {
    if (state == GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED && !b.connected_) {
      b.connected_ = true;
      if (b.events_.connected) b.events_.connected();
    } else if (state == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED) {
      if (b.events_.failed) b.events_.failed("ICE/DTLS failed");
    }
  });
}

GstPadProbeReturn RelayBranch::keyframe_probe(GstPad*, GstPadProbeInfo* info, gpointer d) {
  if (!gst_video_event_is_force_key_unit(GST_PAD_PROBE_INFO_EVENT(info))) return GST_PAD_PROBE_OK;
  if (auto self = static_cast<Weak*>(d)->lock()) {
    self->post_event([](RelayBranch& b) {
      if (b.events_.keyframe_wanted) b.events_.keyframe_wanted();
    });
  }
  return GST_PAD_PROBE_DROP;
}

GstPadProbeReturn RelayBranch::count_probe(GstPad*, GstPadProbeInfo*, gpointer d) {
  if (auto self = static_cast<Weak*>(d)->lock()) self->frames_.fetch_add(1, std::memory_order_relaxed);
  return GST_PAD_PROBE_OK;
}

void RelayBranch::make_offer() {
  if (offer_made_ || webrtc_ == nullptr) return;  // webrtcbin may ask again when caps arrive
  offer_made_ = true;
  Weak weak = weak_from_this();
  GMainContext* ctx = ctx_;
  GstPromise* promise = make_promise([weak, ctx](const PromiseReply& r) {
    std::string err = r.error();
    GstWebRTCSessionDescription* offer = nullptr;
    if (err.empty() && r.reply != nullptr) {
      gst_structure_get(r.reply, "offer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &offer, nullptr);
    }
    SessionDescription desc(offer, SdpDeleter{});
    post(ctx, [weak, desc, err] {
      auto self = weak.lock();
      if (self && !self->closed_) self->offer_created(desc.get(), err);
    });
  });
  g_signal_emit_by_name(webrtc_, "create-offer", nullptr, promise);
}

void RelayBranch::offer_created(GstWebRTCSessionDescription* offer, const std::string& err) {
  if (webrtc_ == nullptr) return;
  if (offer == nullptr) {
    if (events_.failed) events_.failed("could not create an offer: " + (err.empty() ? std::string("no offer") : err));
    return;
  }
  // The offer goes out before set-local-description starts gathering, or candidates would
  // overtake it.
  if (events_.offer) events_.offer(Sdp{SdpType::offer, sdp_text(offer)});
  if (webrtc_ != nullptr && !closed_) g_signal_emit_by_name(webrtc_, "set-local-description", offer, nullptr);
}

void RelayBranch::set_answer(const Sdp& answer) {
  if (closed_ || webrtc_ == nullptr) return;
  SessionDescription desc;
  try {
    desc = parse_sdp(answer);
  } catch (const Error& e) {
    if (events_.failed) events_.failed(e.what());
    return;
  }
  Weak weak = weak_from_this();
  GstPromise* promise = make_promise([weak](const PromiseReply& r) {
    std::string err = r.error();
    if (err.empty()) return;
    if (auto self = weak.lock()) {
      self->post_event([err](RelayBranch& b) {
        if (b.events_.failed) b.events_.failed("the answer was refused: " + err);
      });
    }
  });
  g_signal_emit_by_name(webrtc_, "set-remote-description", desc.get(), promise);
}

void RelayBranch::add_ice(const std::string& candidate, unsigned mline) {
  if (closed_ || webrtc_ == nullptr || candidate.empty()) return;
  g_signal_emit_by_name(webrtc_, "add-ice-candidate", mline, candidate.c_str());
}

}  // namespace p2p::media
