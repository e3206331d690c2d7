// media/stats: renderings of the status figures, the AIMD rule and the get-stats reader.
#define GST_USE_UNSTABLE_API  // gst/webrtc warns otherwise; its API is stable enough for 1.22
#include "media/stats.hpp"

#include <fmt/format.h>
#include <gst/gst.h>
#include <gst/webrtc/webrtc.h>

#include <algorithm>
#include <cmath>

namespace p2p::media {
namespace {

std::string opt_number(const std::optional<double>& v, int decimals) {
  if (!v || !std::isfinite(*v)) return "null";
  return fmt::format("{:.{}f}", *v, decimals);
}

std::string opt_text(const std::optional<double>& v, const char* unit) {
  if (!v || !std::isfinite(*v)) return "-";
  return fmt::format("{:.1f}{}", *v, unit);
}

// Only fixed identifiers reach JSON strings here, but never emit a broken document.
std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

double finite_or_zero(double v) { return std::isfinite(v) ? v : 0.0; }

}  // namespace

std::string to_text(const WatchStats& s) {
  std::string out = fmt::format(
      "{:7.1f}s {:<10} {:<4} {:5.1f} fps {:7.0f} kbit/s frames {} audio {} lost {} jitter {:.1f}ms "
      "rtt {} decode {}",
      s.elapsed_s, s.state, s.video_codec.empty() ? "-" : s.video_codec, finite_or_zero(s.fps),
      finite_or_zero(s.bitrate_kbps), s.frames_decoded, s.audio_buffers, s.packets_lost,
      finite_or_zero(s.jitter_ms), opt_text(s.rtt_ms, "ms"), opt_text(s.decode_latency_ms, "ms"));
  // Relay trees only: a plain leaf under the broadcaster keeps the short line.
  if (s.depth > 1 || s.children > 0 || s.frames_forwarded > 0) {
    out += fmt::format(" depth {} children {} forwarded {}", s.depth, s.children, s.frames_forwarded);
  }
  return out;
}

std::string to_json(const WatchStats& s) {
  // "frames" is what flowed through us: decoded, or forwarded when we only relay.
  return fmt::format(
      "{{\"elapsed_s\":{:.3f},\"state\":{},\"video_codec\":{},\"fps\":{:.2f},\"bitrate_kbps\":{:.1f},"
      "\"frames_decoded\":{},\"audio_buffers\":{},\"packets_received\":{},\"packets_lost\":{},"
      "\"jitter_ms\":{:.2f},\"rtt_ms\":{},\"decode_latency_ms\":{},\"first_frame_ms\":{},"
      "\"depth\":{},\"parent\":{},\"frames\":{},\"frames_forwarded\":{},\"children\":{}}}",
      finite_or_zero(s.elapsed_s), json_string(s.state),
      s.video_codec.empty() ? "null" : json_string(s.video_codec), finite_or_zero(s.fps),
      finite_or_zero(s.bitrate_kbps), s.frames_decoded, s.audio_buffers, s.packets_received,
      s.packets_lost, finite_or_zero(s.jitter_ms), opt_number(s.rtt_ms, 2),
      opt_number(s.decode_latency_ms, 2), opt_number(s.first_frame_ms, 1), s.depth,
      s.parent.empty() ? "null" : json_string(s.parent), std::max(s.frames_decoded, s.frames_forwarded),
      s.frames_forwarded, s.children);
}

std::string to_text(const BroadcastStats& s) {
  return fmt::format(
      "{:7.1f}s watchers {} ({} connected) {:5.1f} fps {:6.0f}/{} kbit/s frames {} keyframe-requests {} "
      "loss {:.1f}% rtt {}",
      s.elapsed_s, s.watchers, s.connected, finite_or_zero(s.fps), finite_or_zero(s.sent_kbps),
      s.target_kbps, s.frames_sent, s.keyframes_requested, 100.0 * finite_or_zero(s.worst_loss),
      opt_text(s.worst_rtt_ms, "ms"));
}

std::string to_json(const BroadcastStats& s) {
  return fmt::format(
      "{{\"elapsed_s\":{:.3f},\"watchers\":{},\"connected\":{},\"target_kbps\":{},\"sent_kbps\":{:.1f},"
      "\"fps\":{:.2f},\"frames_sent\":{},\"keyframes_requested\":{},\"worst_loss\":{:.4f},"
      "\"worst_rtt_ms\":{}}}",
      finite_or_zero(s.elapsed_s), s.watchers, s.connected, s.target_kbps,
      finite_or_zero(s.sent_kbps), finite_or_zero(s.fps), s.frames_sent, s.keyframes_requested,
      finite_or_zero(s.worst_loss), opt_number(s.worst_rtt_ms, 2));
}

unsigned next_bitrate_kbps(unsigned current_kbps, double loss_fraction, unsigned min_kbps,
                           unsigned max_kbps) {
  if (max_kbps < min_kbps) max_kbps = min_kbps;
  double loss = std::isfinite(loss_fraction) ? std::clamp(loss_fraction, 0.0, 1.0) : 0.0;
  double next = current_kbps;
  if (loss > 0.10) {
    next = current_kbps * (1.0 - 0.5 * loss);
  } else if (loss < 0.02) {
    next = current_kbps + std::max(1.0, max_kbps / 20.0);
  }
  return static_cast<unsigned>(std::clamp(next, double(min_kbps), double(max_kbps)));
}

namespace {

std::uint64_t get_u64(const GstStructure* s, const char* field) {
  guint64 v = 0;
  if (gst_structure_get_uint64(s, field, &v)) return v;
  guint u = 0;
  if (gst_structure_get_uint(s, field, &u)) return u;
  return 0;
}

std::int64_t get_i64(const GstStructure* s, const char* field) {
  gint64 v = 0;
  if (gst_structure_get_int64(s, field, &v)) return v;
  gint i = 0;
  if (gst_structure_get_int(s, field, &i)) return i;
  return static_cast<std::int64_t>(get_u64(s, field));
}

std::optional<double> get_double(const GstStructure* s, const char* field) {
  double v = 0;
  if (gst_structure_get_double(s, field, &v) && std::isfinite(v)) return v;
  return std::nullopt;
}

void keep_max(std::optional<double>& slot, std::optional<double> v) {
  if (v && (!slot || *v > *slot)) slot = v;
}

// A receiver gets no RTT from plain RTCP; its jitter buffer times NACK -> retransmission
// round trips, which is the same figure whenever packets were lost.
std::optional<double> retransmission_rtt(const GstStructure* inbound) {
  const GValue* v = gst_structure_get_value(inbound, "gst-rtpjitterbuffer-stats");
  if (v == nullptr || !G_VALUE_HOLDS(v, GST_TYPE_STRUCTURE)) return std::nullopt;
  std::uint64_t ns = get_u64(gst_value_get_structure(v), "rtx-rtt");
  if (ns == 0) return std::nullopt;
  return double(ns) / 1e9;
}

// webrtcbin 1.22 makes remote-inbound-rtp entries for only some streams (it drops those whose
// SSRC the offer did not list), but rtpsession keeps the last receiver report block about each
// of our streams in the outbound entry's source stats: fraction lost in 1/256, RTT in 1/65536 s.
void add_report_block(RtpTotals& t, const GstStructure* outbound) {
  const GValue* v = gst_structure_get_value(outbound, "gst-rtpsource-stats");
  if (v == nullptr || !G_VALUE_HOLDS(v, GST_TYPE_STRUCTURE)) return;
  const GstStructure* src = gst_value_get_structure(v);
  gboolean have_rb = FALSE;
  if (!gst_structure_get_boolean(src, "have-rb", &have_rb) || !have_rb) return;
  t.remote_packets_lost += get_i64(src, "rb-packetslost");
  keep_max(t.remote_fraction_lost, double(get_u64(src, "rb-fractionlost")) / 256.0);
  std::uint64_t rtt = get_u64(src, "rb-round-trip");
  if (rtt > 0) keep_max(t.rtt_s, double(rtt) / 65536.0);
}

void add_one(RtpTotals& t, const GstStructure* s) {
  GstWebRTCStatsType type{};
  if (!gst_structure_get_enum(s, "type", GST_TYPE_WEBRTC_STATS_TYPE, reinterpret_cast<gint*>(&type))) {
    return;
  }
  switch (type) {
    case GST_WEBRTC_STATS_INBOUND_RTP:
      t.bytes_received += get_u64(s, "bytes-received");
      t.packets_received += get_u64(s, "packets-received");
      t.packets_lost += get_i64(s, "packets-lost");
      if (auto j = get_double(s, "jitter")) t.jitter_s = std::max(t.jitter_s, *j);
      keep_max(t.rtt_s, retransmission_rtt(s));
      break;
    case GST_WEBRTC_STATS_OUTBOUND_RTP:
      t.packets_sent += get_u64(s, "packets-sent");
      add_report_block(t, s);
      break;
    case GST_WEBRTC_STATS_REMOTE_INBOUND_RTP:  // the same report blocks: counted from outbound-rtp
      keep_max(t.remote_fraction_lost, get_double(s, "fraction-lost"));
      keep_max(t.rtt_s, get_double(s, "round-trip-time"));
      break;
    case GST_WEBRTC_STATS_REMOTE_OUTBOUND_RTP:
    default:
      break;
  }
}

GstElement* find_by_factory(GstElement* bin, const char* factory) {
  GstElement* found = nullptr;
  GstIterator* it = gst_bin_iterate_recurse(GST_BIN(bin));
  GValue v = G_VALUE_INIT;
  while (found == nullptr && gst_iterator_next(it, &v) == GST_ITERATOR_OK) {
    auto* e = GST_ELEMENT(g_value_get_object(&v));
    GstElementFactory* f = gst_element_get_factory(e);
    if (f != nullptr && g_strcmp0(GST_OBJECT_NAME(f), factory) == 0) found = GST_ELEMENT(gst_object_ref(e));
    g_value_unset(&v);
  }
  gst_iterator_free(it);
  return found;
}

void add_session_sources(RtpTotals& t, GObject* session) {
  // RTPSession hands its sources out as a GValueArray, deprecated in GLib but still its API.
  G_GNUC_BEGIN_IGNORE_DEPRECATIONS
  GValueArray* sources = nullptr;
  g_object_get(session, "sources", &sources, nullptr);
  for (guint i = 0; sources != nullptr && i < sources->n_values; ++i) {
    GObject* src = G_OBJECT(g_value_get_object(g_value_array_get_nth(sources, i)));
    GstStructure* st = nullptr;
    g_object_get(src, "stats", &st, nullptr);
    if (st != nullptr) {
      add_source_stats(t, st);
      gst_structure_free(st);
    }
  }
  if (sources != nullptr) g_value_array_free(sources);
  G_GNUC_END_IGNORE_DEPRECATIONS
}

void add_jitterbuffer_rtt(RtpTotals& t, GstElement* rtpbin) {
  GstIterator* it = gst_bin_iterate_recurse(GST_BIN(rtpbin));
  GValue v = G_VALUE_INIT;
  while (gst_iterator_next(it, &v) == GST_ITERATOR_OK) {
    auto* e = GST_ELEMENT(g_value_get_object(&v));
    GstElementFactory* f = gst_element_get_factory(e);
    if (f != nullptr && g_strcmp0(GST_OBJECT_NAME(f), "rtpjitterbuffer") == 0) {
      GstStructure* st = nullptr;
      g_object_get(e, "stats", &st, nullptr);
      if (st != nullptr) {
        std::uint64_t ns = get_u64(st, "rtx-rtt");
        if (ns > 0) keep_max(t.rtt_s, double(ns) / 1e9);
        gst_structure_free(st);
      }
    }
    g_value_unset(&v);
  }
  gst_iterator_free(it);
}

}  // namespace

void add_source_stats(RtpTotals& t, const GstStructure* s) {
  gboolean internal = FALSE, sender = FALSE, have_rb = FALSE;
  gst_structure_get_boolean(s, "internal", &internal);
  gst_structure_get_boolean(s, "is-sender", &sender);
  if (internal) {
    // One of our streams; rtpsession folds the peer's report blocks about it into packets-lost.
    t.packets_sent += get_u64(s, "packets-sent");
    if (sender) t.remote_packets_lost += get_i64(s, "packets-lost");
    return;
  }
  // The peer's source carries the last report block it sent us (about one of our streams):
  // fraction lost in 1/256 and the round trip in 1/65536 s.
  if (gst_structure_get_boolean(s, "have-rb", &have_rb) && have_rb) {
    keep_max(t.remote_fraction_lost, double(get_u64(s, "rb-fractionlost")) / 256.0);
    std::uint64_t rtt = get_u64(s, "rb-round-trip");
    if (rtt > 0) keep_max(t.rtt_s, double(rtt) / 65536.0);
  }
  if (!sender) return;
  t.bytes_received += get_u64(s, "octets-received");
  t.packets_received += get_u64(s, "packets-received");
  t.packets_lost += get_i64(s, "packets-lost");
  std::int64_t clock_rate = get_i64(s, "clock-rate");
  if (clock_rate > 0) t.jitter_s = std::max(t.jitter_s, double(get_u64(s, "jitter")) / double(clock_rate));
}

RtpTotals read_session_totals(GstElement* webrtcbin) {
  RtpTotals t;
  if (webrtcbin == nullptr) return t;
  GstElement* rtpbin = find_by_factory(webrtcbin, "rtpbin");
  if (rtpbin == nullptr) return t;
  for (guint id = 0; id < 16; ++id) {  // one session with max-bundle; one per m-line without
    GObject* session = nullptr;
    g_signal_emit_by_name(rtpbin, "get-internal-session", id, &session);
    if (session == nullptr) continue;
    add_session_sources(t, session);
    g_object_unref(session);
  }
  add_jitterbuffer_rtt(t, rtpbin);
  gst_object_unref(rtpbin);
  return t;
}

RtpTotals read_rtp_totals(const GstStructure* stats) {
  RtpTotals t;
  if (stats == nullptr) return t;
  int n = gst_structure_n_fields(stats);
  for (int i = 0; i < n; ++i) {
    const GValue* v = gst_structure_get_value(stats, gst_structure_nth_field_name(stats, i));
    if (v != nullptr && G_VALUE_HOLDS(v, GST_TYPE_STRUCTURE)) add_one(t, gst_value_get_structure(v));
  }
  return t;
}

}  // namespace p2p::media
