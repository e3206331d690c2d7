// media/relay_branch: one child of a relaying watcher. queue -> payloader -> its own sendonly
// webrtcbin per medium, in one bin fed by the watcher's video and audio tees, so the child gets
// the stream the watcher receives without re-encoding. The branch makes the offer; the watcher
// routes its signalling and passes its keyframe requests upstream.
#pragma once
#include <glib.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "media/options.hpp"
#include "media/signaller.hpp"
#include "media/webrtc_util.hpp"

namespace p2p::media {

// Every callback runs on the branch's main context, never after detach() or forget().
struct RelayBranchEvents {
  std::function<void(const Sdp& offer)> offer;  // send it to the child
  std::function<void(const std::string& candidate, unsigned mline)> ice;
  std::function<void()> connected;                     // ICE and DTLS are up
  std::function<void(const std::string& why)> failed;  // unusable now; end the session
  std::function<void()> keyframe_wanted;               // the child sent a PLI or FIR
};

struct RelayBranchConfig {
  std::string video_codec;  // encoding name: VP8, H264 or VP9
  bool audio = true;        // an Opus track too (fed by the audio tee)
  IceOptions ice{};
  unsigned shutdown_timeout_ms = 5000;
};

class RelayBranch : public std::enable_shared_from_this<RelayBranch> {
 public:
  // index names the bin's elements (child<index>); ctx is the watcher's main context.
  static std::shared_ptr<RelayBranch> create(std::string session, unsigned index, GMainContext* ctx,
                                             RelayBranchEvents events);
  ~RelayBranch();
  RelayBranch(const RelayBranch&) = delete;
  RelayBranch& operator=(const RelayBranch&) = delete;

  // Builds the bin inside `pipeline` (playing) and links it to the tees last (atee is only used
  // with config.audio). Throws RuntimeError; whatever was built is removed again then.
  void attach(GstElement* pipeline, GstElement* vtee, GstElement* atee, const RelayBranchConfig& config);
  void set_answer(const Sdp& answer);
  void add_ice(const std::string& candidate, unsigned mline);
  // Unlinks from the tees between two buffers, then stops and removes the bin on the main
  // context. The tees and the other branches never stop.
  void detach();
  // The whole pipeline is going down: release the tee pads now and drop references only.
  void forget();

  const std::string& session() const { return session_; }
  bool connected() const { return connected_; }
  // True when obj is this branch's bin or inside it (bus messages).
  bool owns(GstObject* obj) const;
  std::uint64_t video_frames() const { return frames_.load(); }  // into its payloader

 private:
  RelayBranch(std::string session, unsigned index, GMainContext* ctx, RelayBranchEvents events);
  struct Detach;
  struct Tag;
  struct Shield;

  void build(const RelayBranchConfig& config);
  void add_sender(GstElement* payloader, const std::string& codec, const char* ghost);
  GstPad* link_tee(GstElement* tee, const char* ghost);
  void release_tee_pads();
  void drop();
  template <class F>
  void connect(const char* signal, F handler);
  void post_event(std::function<void(RelayBranch&)> fn);

  static void on_negotiation_needed(GstElement*, gpointer d);
  static void on_ice_candidate(GstElement*, guint mline, gchar* candidate, gpointer d);
  static void on_connection_state(GstElement* webrtc, GParamSpec*, gpointer d);
  static GstPadProbeReturn keyframe_probe(GstPad*, GstPadProbeInfo* info, gpointer d);
  static GstPadProbeReturn count_probe(GstPad*, GstPadProbeInfo* info, gpointer d);
  static GstPadProbeReturn shield_probe(GstPad*, GstPadProbeInfo* info, gpointer d);

  void make_offer();
  void offer_created(GstWebRTCSessionDescription* offer, const std::string& err);

  std::string session_;
  unsigned index_;
  GMainContext* ctx_;
  RelayBranchEvents events_;
  GstElement* pipeline_ = nullptr;  // not owned; null once forgotten or dropped
  GstElement* bin_ = nullptr;       // owned by the pipeline while attached
  GstElement* webrtc_ = nullptr;
  GstElement* vtee_ = nullptr;
  GstElement* atee_ = nullptr;
  GstPad* vtee_pad_ = nullptr;  // our references to the tees' request pads
  GstPad* atee_pad_ = nullptr;
  unsigned shutdown_timeout_ms_ = 5000;
  bool offer_made_ = false;
  bool connected_ = false;
  bool closed_ = false;  // detached or forgotten: no more events
  std::atomic<std::uint64_t> frames_{0};
};

}  // namespace p2p::media
