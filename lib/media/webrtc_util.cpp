// media/webrtc_util: webrtcbin creation, promises, SDP conversion and offer inspection.
#include "media/webrtc_util.hpp"

#include <gst/sdp/sdp.h>

#include <algorithm>
#include <cctype>

#include "media/gst_util.hpp"
#include "util/error.hpp"

namespace p2p::media {

namespace {

// rtpsession stretches a feedback session's regular RTCP to 0.5-1.5 x rtcp-min-interval (5 s by
// default), and between regular reports RFC 4585 allows one early packet per regular interval.
// Any NACK or keyframe request after the first then waits for the next regular report, and the
// interval also follows the RTCP bandwidth (5% of the stream: ~180 ms at 300 kbit/s). Over a
// link with 80 ms RTT and a 250 ms jitter buffer, that wait made every retry too late (measured
// in CliNetns: one packet in eight NACKed was lost for good). Reports every 25-75 ms, with RTCP
// allowed 20% of the stream, keep feedback within tens of ms for about 20 small packets a second.
constexpr guint64 kRtcpMinIntervalNs = 50 * GST_MSECOND;
constexpr gdouble kRtcpFraction = 0.2;
constexpr gint kRtxDelayMs = 5;

void on_deep_element_added(GstBin*, GstBin*, GstElement* e, gpointer) {
  GstElementFactory* f = gst_element_get_factory(e);
  const gchar* name = f != nullptr ? gst_plugin_feature_get_name(GST_PLUGIN_FEATURE(f)) : nullptr;
  if (g_strcmp0(name, "rtpsession") == 0) {
    g_object_set(e, "rtcp-min-interval", kRtcpMinIntervalNs, "rtcp-fraction", kRtcpFraction, nullptr);
  } else if (g_strcmp0(name, "rtpjitterbuffer") == 0) {
    // By default the jitter buffer guesses when the next packet is due and, past its latency,
    // calls it lost even though no later packet has shown a gap. A busy sender, or a relay
    // releasing what it held for a retransmission, is merely late: those packets would be
    // thrown away and the decoder would wait for a keyframe. A real gap is still NACKed as soon
    // as the packet after it arrives.
    g_object_set(e, "rtx-next-seqnum", FALSE, nullptr);
    // A gap is NACKed within kRtxDelayMs, not after twice the arrival jitter (~33 ms at 15 fps):
    // that wait, plus a round trip, left no time for a second try within a 250 ms buffer, so a
    // lost NACK or retransmission froze the picture until the next keyframe. Paths that reorder
    // enough to fool this cost one spare retransmission.
    g_object_set(e, "rtx-delay", kRtxDelayMs, nullptr);
  }
}

}  // namespace

GstElement* make_webrtcbin(const IceOptions& ice, const std::string& name) {
  GstElement* webrtc = make_element("webrtcbin", name.c_str());
  g_signal_connect(webrtc, "deep-element-added", G_CALLBACK(on_deep_element_added), nullptr);
  g_object_set(webrtc, "bundle-policy", GST_WEBRTC_BUNDLE_POLICY_MAX_BUNDLE, nullptr);
  if (!ice.stun.empty()) g_object_set(webrtc, "stun-server", ice.stun.c_str(), nullptr);
  for (const auto& turn : ice.turn) {
    gboolean ok = FALSE;
    g_signal_emit_by_name(webrtc, "add-turn-server", turn.c_str(), &ok);
    if (!ok) {
      gst_object_unref(webrtc);
      throw UsageError("webrtcbin refused the TURN server '" + turn + "'");
    }
  }
  GObject* agent_wrapper = nullptr;
  g_object_get(webrtc, "ice-agent", &agent_wrapper, nullptr);
  if (agent_wrapper != nullptr) {
    if (g_object_class_find_property(G_OBJECT_GET_CLASS(agent_wrapper), "ice-tcp") != nullptr) {
      g_object_set(agent_wrapper, "ice-tcp", ice.ice_tcp ? TRUE : FALSE, nullptr);
    }
    if (g_object_class_find_property(G_OBJECT_GET_CLASS(agent_wrapper), "agent") != nullptr) {
      GObject* nice = nullptr;
      g_object_get(agent_wrapper, "agent", &nice, nullptr);
      if (nice != nullptr) {
        g_object_set(nice, "upnp", FALSE, nullptr);
        // Host candidates only (no STUN/TURN): checks go to peers on our own network, so pace
        // them at RFC 8445's floor of 5 ms, not libnice's 20; it saves ~50 ms of every connection.
        if (ice.stun.empty() && ice.turn.empty()) g_object_set(nice, "stun-pacing-timer", 5u, nullptr);
        g_object_unref(nice);
      }
    }
    g_object_unref(agent_wrapper);
  }
  return webrtc;
}

namespace {

using PromiseFn = std::function<void(const PromiseReply&)>;

void on_promise_changed(GstPromise* promise, gpointer data) {
  auto* fn = static_cast<PromiseFn*>(data);
  PromiseReply r;
  r.replied = gst_promise_wait(promise) == GST_PROMISE_RESULT_REPLIED;
  if (r.replied) r.reply = gst_promise_get_reply(promise);
  (*fn)(r);
  gst_promise_unref(promise);
}

void delete_promise_fn(gpointer data) { delete static_cast<PromiseFn*>(data); }

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return s;
}

std::string media_direction(const GstSDPMedia* m, const GstSDPMessage* msg) {
  static const char* dirs[] = {"sendrecv", "sendonly", "recvonly", "inactive"};
  for (const char* d : dirs) {
    if (gst_sdp_media_get_attribute_val(m, d) != nullptr) return d;
  }
  for (const char* d : dirs) {
    if (gst_sdp_message_get_attribute_val(msg, d) != nullptr) return d;
  }
  return "sendrecv";  // RFC 4566 default
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

GstPromise* make_promise(std::function<void(const PromiseReply&)> fn) {
  // The change func owns the only reference and drops it; the emitter refs it while it works.
  return gst_promise_new_with_change_func(on_promise_changed, new PromiseFn(std::move(fn)),
                                          delete_promise_fn);
}

std::string PromiseReply::error() const {
  if (!replied) return "no reply (the peer connection closed)";
  if (reply == nullptr || !gst_structure_has_field(reply, "error")) return "";
  GError* err = nullptr;
  gst_structure_get(reply, "error", G_TYPE_ERROR, &err, nullptr);
  std::string msg = err != nullptr ? err->message : "unknown error";
  g_clear_error(&err);
  return msg;
}

SessionDescription parse_sdp(const Sdp& sdp) {
  ensure_gst_init();
  GstSDPMessage* msg = nullptr;
  if (gst_sdp_message_new_from_text(sdp.text.c_str(), &msg) != GST_SDP_OK || msg == nullptr ||
      gst_sdp_message_medias_len(msg) == 0) {
    if (msg != nullptr) gst_sdp_message_free(msg);
    throw RuntimeError(std::string("the peer sent an ") + to_string(sdp.type) + " that is not valid SDP");
  }
  auto type = sdp.type == SdpType::offer ? GST_WEBRTC_SDP_TYPE_OFFER : GST_WEBRTC_SDP_TYPE_ANSWER;
  return SessionDescription(gst_webrtc_session_description_new(type, msg), SdpDeleter{});
}

std::string sdp_text(const GstWebRTCSessionDescription* desc) {
  if (desc == nullptr || desc->sdp == nullptr) return "";
  gchar* text = gst_sdp_message_as_text(desc->sdp);
  std::string out = text != nullptr ? text : "";
  g_free(text);
  return out;
}

int send_payload_type(const std::string& codec) {
  if (codec == "VP8") return 96;
  if (codec == "VP9") return 98;
  if (codec == "H264") return 102;
  if (codec == "OPUS") return 111;
  return 0;
}

std::string h264_payload_launch(const std::string& name, int pt, std::uint32_t ssrc) {
  std::string launch = "h264parse config-interval=-1 ! rtph264pay name=" + name +
                       " mtu=1200 config-interval=0 aggregate-mode=zero-latency pt=" + std::to_string(pt);
  if (ssrc != 0) launch += " ssrc=" + std::to_string(ssrc);
  return launch;
}

std::uint32_t random_ssrc() {
  std::uint32_t v = 0;
  while (v == 0) v = g_random_int();
  return v;
}

GstCaps* send_preferences(const std::string& codec, std::uint32_t ssrc) {
  int pt = send_payload_type(codec);
  if (pt == 0) return nullptr;
  std::string caps;
  if (codec == "OPUS") {
    caps = "application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,encoding-params=(string)2";
  } else {
    caps = "application/x-rtp,media=video,encoding-name=" + codec + ",clock-rate=90000";
    if (codec == "H264") caps += ",packetization-mode=(string)1";
    // These become a=rtcp-fb lines: the receiver may then ask for retransmissions and keyframes.
    caps += ",rtcp-fb-nack=(boolean)true,rtcp-fb-nack-pli=(boolean)true,rtcp-fb-ccm-fir=(boolean)true";
  }
  caps += ",payload=" + std::to_string(pt);
  if (ssrc != 0) caps += ",ssrc=(uint)" + std::to_string(ssrc);
  return gst_caps_from_string(caps.c_str());
}

const std::vector<std::string>& receivable_video_codecs() {
  static const std::vector<std::string> codecs{"VP8", "H264", "VP9"};
  return codecs;
}

const std::vector<std::string>& receivable_audio_codecs() {
  static const std::vector<std::string> codecs{"OPUS"};
  return codecs;
}

std::vector<OfferedMedia> summarize_offer(const std::string& text) {
  ensure_gst_init();
  GstSDPMessage* msg = nullptr;
  if (gst_sdp_message_new_from_text(text.c_str(), &msg) != GST_SDP_OK || msg == nullptr ||
      gst_sdp_message_medias_len(msg) == 0) {
    if (msg != nullptr) gst_sdp_message_free(msg);
    throw RuntimeError("the offer is not valid SDP (no m-lines)");
  }
  std::vector<OfferedMedia> out;
  for (guint i = 0; i < gst_sdp_message_medias_len(msg); ++i) {
    const GstSDPMedia* m = gst_sdp_message_get_media(msg, i);
    OfferedMedia om;
    om.kind = gst_sdp_media_get_media(m) != nullptr ? gst_sdp_media_get_media(m) : "";
    om.direction = media_direction(m, msg);
    // Port 0 rejects an m-line, except with a=bundle-only (max-bundle offers, RFC 8843).
    om.rejected = gst_sdp_media_get_port(m) == 0 && gst_sdp_media_get_attribute_val(m, "bundle-only") == nullptr;
    for (guint a = 0; a < gst_sdp_media_attributes_len(m); ++a) {
      const GstSDPAttribute* attr = gst_sdp_media_get_attribute(m, a);
      if (attr->key == nullptr || attr->value == nullptr || std::string(attr->key) != "rtpmap") continue;
      // "96 VP8/90000": the name sits between the space and the slash.
      std::string v = attr->value;
      auto sp = v.find(' ');
      auto slash = v.find('/', sp == std::string::npos ? 0 : sp);
      if (sp == std::string::npos || slash == std::string::npos || slash <= sp + 1) continue;
      std::string name = upper(v.substr(sp + 1, slash - sp - 1));
      if (!contains(om.codecs, name)) om.codecs.push_back(name);
    }
    const auto& usable = om.kind == "video"   ? receivable_video_codecs()
                         : om.kind == "audio" ? receivable_audio_codecs()
                                              : std::vector<std::string>{};
    bool peer_sends = om.direction == "sendrecv" || om.direction == "sendonly";
    om.receivable = !om.rejected && peer_sends &&
                    std::any_of(om.codecs.begin(), om.codecs.end(),
                                [&](const std::string& c) { return contains(usable, c); });
    out.push_back(std::move(om));
  }
  gst_sdp_message_free(msg);
  return out;
}

}  // namespace p2p::media
