// media/watcher_session: the incoming session of a Watcher: placement, offers, answers and
// candidates from the signaller, one Input (webrtcbin and depayloaders) per parent, and the
// webrtcbin callbacks, which run on webrtcbin's threads and post to the main context.
#include "media/watcher_impl.hpp"

namespace p2p::media {

using namespace watch_impl;

// ---- signalling: the incoming session ----

void Watcher::Impl::placement(const std::string& parent, unsigned depth) {
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

void Watcher::Impl::remote_sdp(const std::string& session, const Sdp& sdp) {
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
    post_while_alive(weak, c, [err, serial](Impl& self) { self.remote_offer_set(serial, err); });
  });
  g_signal_emit_by_name(in->webrtc, "set-remote-description", desc.get(), promise);
}

void Watcher::Impl::remote_ice(const std::string& session, const std::string& candidate, unsigned mline) {
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

void Watcher::Impl::session_ended(const std::string& session) {
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

void Watcher::Impl::incoming_failed(const std::string& why) {
  if (!input || finished) return;
  std::string session = input->session;
  sig.report_failed(session);
  if (tree_mode) {
    retire_input();
    return;
  }
  finish(WatchEnd::error, "the connection to the broadcaster failed: " + why, false);
}

void Watcher::Impl::create_input(const std::string& session, const std::vector<OfferedMedia>& media) {
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

void Watcher::Impl::retire_input() {
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
  post_while_alive(weak_from_this(), ctx, [old](Impl& self) { self.drop_input(old); });
}

void Watcher::Impl::drop_input(const InputPtr& old) {
  auto it = std::find(retiring.begin(), retiring.end(), old);
  if (it == retiring.end() || pipeline == nullptr) return;  // torn down meanwhile
  set_null_with_watchdog(old->bin, opts.shutdown_timeout_ms);
  gst_bin_remove(GST_BIN(pipeline), old->bin);
  retiring.erase(it);
}

void Watcher::Impl::remote_offer_set(unsigned serial, const std::string& err) {
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
    post_while_alive(weak, c, [desc, e, serial](Impl& self) { self.answer_created(serial, desc, e); });
  });
  g_signal_emit_by_name(in->webrtc, "create-answer", nullptr, promise);
}

void Watcher::Impl::configure_transceivers(Input& in) {
  GArray* all = nullptr;
  g_signal_emit_by_name(in.webrtc, "get-transceivers", &all);
  if (all == nullptr) return;
  for (guint i = 0; i < all->len; ++i) configure(in, g_array_index(all, GstWebRTCRTPTransceiver*, i));
  g_array_unref(all);
}

void Watcher::Impl::configure(Input& in, GstWebRTCRTPTransceiver* t) {
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

void Watcher::Impl::answer_created(unsigned serial, const SessionDescription& answer, const std::string& err) {
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

void Watcher::Impl::on_new_transceiver(GstElement*, GstWebRTCRTPTransceiver* trans, gpointer d) {
  auto* t = static_cast<Tag*>(d);
  std::shared_ptr<Impl> self = t->impl.lock();
  InputPtr in = t->input.lock();
  if (!self || !in) return;
  bool nack = self->opts.latency_ms >= kNackMinLatencyMs;
  g_object_set(trans, "do-nack", nack ? TRUE : FALSE, nullptr);
  self->configure(*in, trans);
}

void Watcher::Impl::on_ice_candidate(GstElement*, guint mline, gchar* candidate, gpointer d) {
  Tag t = *static_cast<Tag*>(d);
  std::string cand = candidate != nullptr ? candidate : "";
  std::shared_ptr<Impl> self;
  InputPtr in;
  if (!is_current(t, self, in)) return;
  unsigned serial = in->serial;
  post_while_alive(t.impl, self->ctx, [serial, cand, mline](Impl& impl) {
    InputPtr now = impl.current_input(serial);
    if (now && !impl.finished) impl.sig.add_ice(now->session, cand, mline);
  });
}

void Watcher::Impl::on_connection_state(GstElement* webrtc, GParamSpec*, gpointer d) {
  Tag t = *static_cast<Tag*>(d);
  GstWebRTCPeerConnectionState state{};
  g_object_get(webrtc, "connection-state", &state, nullptr);
  std::shared_ptr<Impl> self;
  InputPtr in;
  if (!is_current(t, self, in) || state != GST_WEBRTC_PEER_CONNECTION_STATE_FAILED) return;
  unsigned serial = in->serial;
  post_while_alive(t.impl, self->ctx, [serial](Impl& impl) {
    if (impl.current_input(serial)) impl.incoming_failed("ICE/DTLS failed");
  });
}

void Watcher::Impl::on_pad_added(GstElement*, GstPad* pad, gpointer d) {
  Tag t = *static_cast<Tag*>(d);
  std::shared_ptr<Impl> self;
  InputPtr in;
  if (!is_current(t, self, in) || GST_PAD_DIRECTION(pad) != GST_PAD_SRC) return;
  try {
    self->attach(*in, pad);
  } catch (const std::exception& e) {
    std::string msg = e.what();
    post_while_alive(t.impl, self->ctx, [msg](Impl& impl) { impl.finish(WatchEnd::error, msg); });
  }
}

}  // namespace p2p::media
