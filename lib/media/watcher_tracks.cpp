// media/watcher_tracks: what a Watcher does with the tracks it receives: depayload them into
// the tees (on the streaming thread that announces the pad), the probes on the way, relay
// children fed from the tees with their keyframe requests, and giving up on a recording track
// that never comes.
#include "media/watcher_impl.hpp"

namespace p2p::media {

using namespace watch_impl;

// ---- branches (streaming thread) ----

void Watcher::Impl::attach(Input& in, GstPad* pad) {
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
    post_while_alive(weak_from_this(), ctx, [serial](Impl& self) { self.video_arrived(serial); });
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

GstElement* Watcher::Impl::make_depay(const std::string& codec) {
  GstElement* depay = make_element(depayloader(codec));
  if (has_property(depay, "request-keyframe")) g_object_set(depay, "request-keyframe", TRUE, nullptr);
  if (has_property(depay, "wait-for-keyframe")) {
    g_object_set(depay, "wait-for-keyframe", opts.latency_ms >= kNackMinLatencyMs ? TRUE : FALSE, nullptr);
  }
  return depay;
}

std::vector<GstElement*> Watcher::Impl::video_input_chain(const std::string& codec) {
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

void Watcher::Impl::link_input(Input& in, GstPad* pad, const std::vector<GstElement*>& c, GstElement* tee, GstPad*& out) {
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

GstPadProbeReturn Watcher::Impl::into_video_tee(GstPad*, GstPadProbeInfo*, gpointer d) {
  auto* self = static_cast<Impl*>(d);
  self->forwarded.fetch_add(1, std::memory_order_relaxed);
  if (!self->opts.decode) self->output.count_undecoded_frame();
  return GST_PAD_PROBE_OK;
}

GstPadProbeReturn Watcher::Impl::into_audio_tee(GstPad*, GstPadProbeInfo*, gpointer d) {
  auto* self = static_cast<Impl*>(d);
  if (!self->opts.decode) self->output.count_undecoded_audio();
  return GST_PAD_PROBE_OK;
}

GstPadProbeReturn Watcher::Impl::depay_keyframe_request(GstPad*, GstPadProbeInfo* info, gpointer d) {
  GstEvent* e = GST_PAD_PROBE_INFO_EVENT(info);
  if (!gst_video_event_is_force_key_unit(e)) return GST_PAD_PROBE_OK;
  const GstStructure* s = gst_event_get_structure(e);
  if (s != nullptr && gst_structure_has_field(s, kGatedField)) return GST_PAD_PROBE_OK;  // ours
  auto* self = static_cast<Impl*>(d);
  post_while_alive(self->weak_from_this(), self->ctx, [](Impl& impl) { impl.request_keyframe(); });
  return GST_PAD_PROBE_DROP;
}

// ---- relay children (main context) ----

std::string Watcher::Impl::tee_codec() {
  std::lock_guard lock(mutex);
  return video_codec;
}

void Watcher::Impl::child_requested(const std::string& session, const std::string&) {
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

void Watcher::Impl::add_child(const std::string& session) {
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

void Watcher::Impl::fail_child(const std::string& session, const std::string&) {
  if (children.count(session) == 0) return;
  sig.end_session(session);
  remove_child(session);
}

void Watcher::Impl::remove_child(const std::string& session) {
  auto it = children.find(session);
  if (it == children.end()) return;
  it->second->detach();
  children.erase(it);
}

void Watcher::Impl::video_arrived(unsigned serial) {
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

void Watcher::Impl::request_keyframe() {
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

void Watcher::Impl::send_keyframe_request() {
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

void Watcher::Impl::arm_mux_timer_soon() {
  post_while_alive(weak_from_this(), ctx, [](Impl& self) { self.arm_mux_timer(); });
}

void Watcher::Impl::arm_mux_timer() {
  if (mux_timer.active() || finished) return;
  std::weak_ptr<Impl> weak = weak_from_this();
  mux_timer = Timer(ctx, kMuxWaitMs, [weak] {
    if (auto self = weak.lock()) self->output.release_unused_tracks();
    return false;
  });
}

}  // namespace p2p::media
