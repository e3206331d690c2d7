// media/broadcaster_peers: what a Broadcaster does per watcher: a branch from the tees with its
// keyframe gate into a webrtcbin, the offer, answer and candidates, the webrtcbin callbacks
// (on webrtcbin's threads, posted to the main context), and taking the branch down again.
#include "media/broadcaster_impl.hpp"

namespace p2p::media {

using namespace broadcast_impl;

// ---- per-watcher branches ----

GstPadProbeReturn Broadcaster::Impl::gate(GstPad*, GstPadProbeInfo* info, gpointer d) {
  auto* g = static_cast<Gate*>(d);
  int state = g->peer->load(std::memory_order_acquire);
  if (state == kGateOpen || (state == kGateKeyframe && !g->video)) return GST_PAD_PROBE_OK;
  GstBuffer* first = (GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_BUFFER) != 0
                         ? GST_PAD_PROBE_INFO_BUFFER(info)
                         : gst_buffer_list_get(GST_PAD_PROBE_INFO_BUFFER_LIST(info), 0);
  GstClockTime pts = first != nullptr ? GST_BUFFER_PTS(first) : GST_CLOCK_TIME_NONE;
  // The payloader stamps every packet of a frame with its PTS. The first packet with the
  // latest keyframe's PTS starts that keyframe, unless an earlier one of it was dropped.
  if (state == kGateKeyframe && pts != GST_CLOCK_TIME_NONE && pts != g->dropped_pts &&
      pts == g->impl->last_keyframe_pts.load(std::memory_order_acquire)) {
    g->peer->store(kGateOpen, std::memory_order_release);
    return GST_PAD_PROBE_OK;
  }
  g->dropped_pts = pts;
  return GST_PAD_PROBE_DROP;
}

void Broadcaster::Impl::add_gate(GstPad* sink, const PeerPtr& p, bool video) {
  gst_pad_add_probe(sink, GstPadProbeType(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST), &Impl::gate,
                    new Gate{p->gate, this, video}, [](gpointer d) { delete static_cast<Gate*>(d); });
}

GstPadProbeReturn Broadcaster::Impl::thin_out(GstPad*, GstPadProbeInfo* info, gpointer d) {
  auto* loss = static_cast<Loss*>(d);
  if ((GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_BUFFER) != 0) {
    return loss->drop_next() ? GST_PAD_PROBE_DROP : GST_PAD_PROBE_OK;
  }
  GstBufferList* list = gst_buffer_list_make_writable(GST_PAD_PROBE_INFO_BUFFER_LIST(info));
  GST_PAD_PROBE_INFO_DATA(info) = list;
  guint n = gst_buffer_list_length(list);
  std::vector<bool> drop(n);
  for (guint i = 0; i < n; ++i) drop[i] = loss->drop_next();
  for (guint i = n; i-- > 0;) {
    if (drop[i]) gst_buffer_list_remove(list, i, 1);
  }
  return gst_buffer_list_length(list) == 0 ? GST_PAD_PROBE_DROP : GST_PAD_PROBE_OK;
}

void Broadcaster::Impl::add_loss(GstPad* pad, double fraction) {
  gst_pad_add_probe(pad, GstPadProbeType(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST),
                    &Impl::thin_out, new Loss{fraction}, [](gpointer d) { delete static_cast<Loss*>(d); });
}

void Broadcaster::Impl::add_sender(const PeerPtr& p, GstCaps* prefs, const char* ghost_name) {
  bool video = std::string_view(ghost_name) == "video";
  GstPad* sink = gst_element_request_pad_simple(p->webrtc, "sink_%u");
  if (sink == nullptr) {
    gst_caps_unref(prefs);
    throw RuntimeError("webrtcbin refused a sink pad");
  }
  GstWebRTCRTPTransceiver* trans = nullptr;
  g_object_get(sink, "transceiver", &trans, nullptr);
  if (trans != nullptr) {
    g_object_set(trans, "direction", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY, "codec-preferences",
                 prefs, "do-nack", video ? TRUE : FALSE, nullptr);
    gst_object_unref(trans);
  }
  gst_caps_unref(prefs);
  add_gate(sink, p, video);
  if (video && opts.simulate_loss > 0) add_loss(sink, opts.simulate_loss);
  gst_element_add_pad(p->bin, gst_ghost_pad_new(ghost_name, sink));
  gst_object_unref(sink);
}

void Broadcaster::Impl::add_peer(const std::string& session, const std::string& name) {
  if (!running || peers.count(session) != 0) return;
  auto p = std::make_shared<Peer>();
  p->session = session;
  p->name = name;
  p->serial = ++serials;
  try {
    build_peer(p);
  } catch (const Error& e) {
    if (p->bin != nullptr) {
      gst_element_set_state(p->bin, GST_STATE_NULL);
      if (GST_OBJECT_PARENT(p->bin) != nullptr) gst_bin_remove(GST_BIN(pipeline), p->bin);
      else gst_object_unref(p->bin);
    }
    release_tee_pads(*p);
    sig.end_session(session);
    notify_session(session, std::string("failed: ") + e.what());
    return;
  }
  notify_session(session, "requested");
}

void Broadcaster::Impl::build_peer(const PeerPtr& p) {
  std::string n = std::to_string(p->serial);
  p->bin = gst_bin_new(("peer" + n).c_str());
  p->webrtc = make_webrtcbin(opts.ice, "webrtc" + n);
  gst_bin_add(GST_BIN(p->bin), p->webrtc);
  add_sender(p, video_preferences(opts.video, video_ssrc), "video");
  if (opts.audio) add_sender(p, audio_preferences(), "audio");
  connect(p->webrtc, "on-negotiation-needed", &Impl::on_negotiation_needed, p);
  connect(p->webrtc, "on-ice-candidate", &Impl::on_ice_candidate, p);
  connect(p->webrtc, "notify::connection-state", &Impl::on_connection_state, p);
  gst_bin_add(GST_BIN(pipeline), p->bin);
  peers[p->session] = p;
  if (!gst_element_sync_state_with_parent(p->bin)) throw RuntimeError("the watcher branch did not start");
  // Linked last, so no buffer reaches a webrtcbin before its transceivers are set up.
  std::size_t w = least_loaded_worker();
  p->worker = w;
  p->vtee_pad = link_tee_to(vtees[w], p->bin, "video", "a watcher branch");
  if (opts.audio) p->atee_pad = link_tee_to(atees[w], p->bin, "audio", "a watcher branch");
}

void Broadcaster::Impl::release_tee_pad(GstPad*& pad) {
  if (pad == nullptr) return;
  if (GstElement* tee = gst_pad_get_parent_element(pad)) {
    gst_element_release_request_pad(tee, pad);
    gst_object_unref(tee);
  }
  gst_object_unref(pad);
  pad = nullptr;
}

void Broadcaster::Impl::release_tee_pads(Peer& p) {
  release_tee_pad(p.vtee_pad);
  release_tee_pad(p.atee_pad);
}

// ---- webrtcbin signals (its threads) -> main context ----

void Broadcaster::Impl::on_negotiation_needed(GstElement*, gpointer d) {
  Tag t = *static_cast<Tag*>(d);
  if (auto self = t.impl.lock()) {
    post_while_alive(t.impl, self->ctx, [t](Impl& impl) { impl.make_offer(t.session, t.serial); });
  }
}

void Broadcaster::Impl::on_ice_candidate(GstElement*, guint mline, gchar* candidate, gpointer d) {
  Tag t = *static_cast<Tag*>(d);
  std::string cand = candidate != nullptr ? candidate : "";
  if (auto self = t.impl.lock()) {
    post_while_alive(t.impl, self->ctx, [t, cand, mline](Impl& impl) {
      if (impl.find(t.session, t.serial)) impl.sig.add_ice(t.session, cand, mline);
    });
  }
}

void Broadcaster::Impl::on_connection_state(GstElement* webrtc, GParamSpec*, gpointer d) {
  Tag t = *static_cast<Tag*>(d);
  GstWebRTCPeerConnectionState state{};
  g_object_get(webrtc, "connection-state", &state, nullptr);
  if (auto self = t.impl.lock()) {
    post_while_alive(t.impl, self->ctx, [t, state](Impl& impl) { impl.connection_changed(t.session, t.serial, state); });
  }
}

// ---- main-context handlers ----

void Broadcaster::Impl::make_offer(const std::string& session, unsigned serial) {
  PeerPtr p = find(session, serial);
  if (!p || p->offer_made) return;  // webrtcbin may ask again when caps arrive: one offer only
  p->offer_made = true;
  std::weak_ptr<Impl> weak = weak_from_this();
  GMainContext* c = ctx;
  GstPromise* promise = make_promise([weak, c, session, serial](const PromiseReply& r) {
    std::string err = r.error();
    GstWebRTCSessionDescription* offer = nullptr;
    if (err.empty() && r.reply != nullptr) gst_structure_get(r.reply, "offer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &offer, nullptr);
    SessionDescription desc(offer, SdpDeleter{});
    post_while_alive(weak, c, [session, serial, desc, err](Impl& impl) {
      impl.offer_created(session, serial, desc, err);
    });
  });
  g_signal_emit_by_name(p->webrtc, "create-offer", nullptr, promise);
}

void Broadcaster::Impl::remote_sdp(const std::string& session, const Sdp& sdp) {
  auto it = peers.find(session);
  if (it == peers.end()) return;
  PeerPtr p = it->second;
  if (sdp.type != SdpType::answer) {
    fail_peer(session, "the watcher sent an offer; a broadcaster only takes answers");
    return;
  }
  SessionDescription desc;
  try {
    desc = parse_sdp(sdp);
  } catch (const Error& e) {
    fail_peer(session, e.what());
    return;
  }
  std::weak_ptr<Impl> weak = weak_from_this();
  GMainContext* c = ctx;
  unsigned serial = p->serial;
  GstPromise* promise = make_promise([weak, c, session, serial](const PromiseReply& r) {
    std::string err = r.error();
    if (err.empty()) return;
    post_while_alive(weak, c, [session, serial, err](Impl& impl) {
      if (impl.find(session, serial)) impl.fail_peer(session, "the answer was refused: " + err);
    });
  });
  g_signal_emit_by_name(p->webrtc, "set-remote-description", desc.get(), promise);
}

void Broadcaster::Impl::remote_ice(const std::string& session, const std::string& candidate, unsigned mline) {
  auto it = peers.find(session);
  if (it == peers.end() || candidate.empty()) return;
  g_signal_emit_by_name(it->second->webrtc, "add-ice-candidate", mline, candidate.c_str());
}

void Broadcaster::Impl::connection_changed(const std::string& session, unsigned serial, GstWebRTCPeerConnectionState state) {
  PeerPtr p = find(session, serial);
  if (!p) return;
  if (state == GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED && !p->connected) {
    p->connected = true;
    p->gate->store(kGateKeyframe, std::memory_order_release);
    // A new watcher needs a keyframe now, not at the next periodic one.
    force_key_unit(true);
    notify_session(session, "connected");
  } else if (state == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED) {
    fail_peer(session, "ICE/DTLS failed");
  }
}

void Broadcaster::Impl::send_keyframe_later(std::int64_t delay_us) {
  GSource* src = g_timeout_source_new(guint(delay_us / 1000 + 1));
  auto* weak = new std::weak_ptr<Impl>(weak_from_this());
  g_source_set_callback(
      src,
      [](gpointer d) {
        if (auto self = static_cast<std::weak_ptr<Impl>*>(d)->lock()) {
          self->keyframe_pending = false;
          self->force_key_unit();
        }
        return gboolean(G_SOURCE_REMOVE);
      },
      weak, [](gpointer d) { delete static_cast<std::weak_ptr<Impl>*>(d); });
  g_source_attach(src, ctx);
  g_source_unref(src);
}

void Broadcaster::Impl::force_key_unit(bool for_join) {
  if (vpay == nullptr || !running) return;
  if (for_join) keyframe_now = true;
  GstEvent* ev = gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE, TRUE, 0);
  gst_element_send_event(vpay, ev);
}

void Broadcaster::Impl::fail_peer(const std::string& session, const std::string& why) {
  if (peers.count(session) == 0) return;
  sig.end_session(session);
  remove_peer(session, "failed: " + why);
}

GstPadProbeReturn Broadcaster::Impl::unlink_when_idle(GstPad* tee_pad, GstPadProbeInfo*, gpointer d) {
  if (GstPad* peer = gst_pad_get_peer(tee_pad)) {
    gst_pad_unlink(tee_pad, peer);
    gst_object_unref(peer);
  }
  (*static_cast<DetachPtr*>(d))->one_done();
  return GST_PAD_PROBE_REMOVE;
}

void Broadcaster::Impl::remove_peer(const std::string& session, const std::string& state) {
  auto it = peers.find(session);
  if (it == peers.end()) return;
  PeerPtr p = it->second;
  peers.erase(it);
  auto det = std::make_shared<Detach>();
  det->impl = weak_from_this();
  det->ctx = ctx;
  det->peer = p;
  det->left = 1 + (p->vtee_pad != nullptr) + (p->atee_pad != nullptr);
  for (GstPad* pad : {p->vtee_pad, p->atee_pad}) {
    if (pad == nullptr) continue;
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_IDLE, &Impl::unlink_when_idle, new DetachPtr(det),
                      [](gpointer d) { delete static_cast<DetachPtr*>(d); });
  }
  det->one_done();  // our own share, so a probe that fires at once cannot finish early
  notify_session(session, state);
}

void Broadcaster::Impl::drop_branch(const PeerPtr& p) {
  if (pipeline == nullptr) {  // torn down meanwhile: the tees are gone with it
    if (p->vtee_pad != nullptr) gst_object_unref(p->vtee_pad);
    if (p->atee_pad != nullptr) gst_object_unref(p->atee_pad);
    p->vtee_pad = p->atee_pad = nullptr;
    return;
  }
  release_tee_pads(*p);
  if (p->bin == nullptr) return;
  set_null_with_watchdog(p->bin, opts.shutdown_timeout_ms);
  gst_bin_remove(GST_BIN(pipeline), p->bin);
  p->bin = nullptr;
  p->webrtc = nullptr;
}

}  // namespace p2p::media
