// media/webrtc_util: webrtcbin setup and SDP plumbing shared by the broadcaster and the watcher
// (ICE options, promises with C++ callbacks, SDP text both ways, reading an offer's m-lines).
#pragma once
#ifndef GST_USE_UNSTABLE_API
#define GST_USE_UNSTABLE_API
#endif
#include <gst/gst.h>
#include <gst/webrtc/webrtc.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "media/options.hpp"
#include "media/signaller.hpp"

namespace p2p::media {

// A webrtcbin with max-bundle, the given STUN/TURN servers, libnice's UPnP off (it adds
// ~200 ms to gathering) and host TCP candidates only when asked for.
GstElement* make_webrtcbin(const IceOptions& ice, const std::string& name);

// What a promise came back with. webrtcbin replies to set-*-description with no structure
// on success, so "replied" and "reply" are separate.
struct PromiseReply {
  bool replied = false;                 // false: interrupted or expired
  const GstStructure* reply = nullptr;  // may be null even when replied
  // The error the reply carries ("error" field), or "" when there is none.
  std::string error() const;
};

// A promise whose outcome runs fn on webrtcbin's thread; pass it to one emit and do not unref it.
GstPromise* make_promise(std::function<void(const PromiseReply&)> fn);

struct SdpDeleter {
  void operator()(GstWebRTCSessionDescription* d) const { gst_webrtc_session_description_free(d); }
};
using SessionDescription = std::shared_ptr<GstWebRTCSessionDescription>;

// Throws RuntimeError when the text is not SDP.
SessionDescription parse_sdp(const Sdp& sdp);
std::string sdp_text(const GstWebRTCSessionDescription* desc);

// One m-line of an offer, as far as a watcher cares.
struct OfferedMedia {
  std::string kind;       // "audio", "video", or the SDP media name
  std::string direction;  // sendrecv | sendonly | recvonly | inactive
  bool rejected = false;  // port 0
  std::vector<std::string> codecs;  // encoding names from a=rtpmap, upper case
  // We can receive from it: the peer sends, and a codec we can depayload is offered.
  bool receivable = false;
};
// Throws RuntimeError when the text is not SDP.
std::vector<OfferedMedia> summarize_offer(const std::string& sdp_text);

// Codec preferences for a sendonly transceiver sending `codec` (VP8, H264, VP9 or OPUS), with
// NACK, PLI and FIR feedback on video, and the payload type its payloader must use; nullptr and
// 0 for other codecs. The caller owns the caps.
// A nonzero `ssrc` (the payloader's, see random_ssrc) goes into the caps: webrtcbin writes the
// offer's a=ssrc and RTX ssrc-group FID lines only from caps that carry it, and without them the
// receiver never turns on retransmission requests and the sender maps RTX to no stream. The
// offer is often made before the payloader's own caps reach webrtcbin, so it cannot wait for them.
GstCaps* send_preferences(const std::string& codec, std::uint32_t ssrc = 0);
// A random SSRC for a payloader (never 0, which webrtcbin reads as "none").
std::uint32_t random_ssrc();
int send_payload_type(const std::string& codec);

// gst-launch text of an H.264 sender's payloading: h264parse puts SPS/PPS in front of every IDR
// access unit, then rtph264pay (its last element, named `name`). rtph264pay's own
// config-interval=-1 puts them in front of every IDR *slice*, which is not valid H.264: receivers
// split a multi-slice keyframe in two at them, and the frames after it lose their top slices.
std::string h264_payload_launch(const std::string& name, int pt, std::uint32_t ssrc = 0);

// The video codecs a watcher accepts, best first, and the audio one.
const std::vector<std::string>& receivable_video_codecs();
const std::vector<std::string>& receivable_audio_codecs();

}  // namespace p2p::media
