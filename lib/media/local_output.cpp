// media/local_output: the watcher's own playback, recording and counting behind its tees.
#include "media/local_output.hpp"

#include <gst/video/video.h>

#include <algorithm>

#include "media/gst_util.hpp"
#include "util/error.hpp"

namespace p2p::media {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

const char* decoder(const std::string& codec) {
  if (codec == "VP8") return "vp8dec";
  if (codec == "H264") return "avdec_h264";  // openh264dec cannot decode x264's output
  return "vp9dec";
}

}  // namespace

GstElement* live_sink(const char* factory, bool sync) {
  GstElement* e = make_element(factory);
  // Added while the pipeline plays: an async sink would wait for a preroll that never comes.
  if (has_property(e, "async")) g_object_set(e, "async", FALSE, nullptr);
  if (has_property(e, "sync")) g_object_set(e, "sync", sync ? TRUE : FALSE, nullptr);
  if (GST_IS_BIN(e)) g_object_set(e, "async-handling", TRUE, nullptr);
  return e;
}

LocalOutput::~LocalOutput() { forget(); }

void LocalOutput::prepare_recording(GstElement* pipeline, bool video, bool audio) {
  if (opts_.sink != WatchSink::record || !opts_.decode) return;
  std::lock_guard lock(mutex_);
  if (mux_ != nullptr) return;
  GstElement* m = make_element(ends_with(opts_.output, ".webm") ? "webmmux" : "matroskamux", "mux");
  // The muxer clips to running time and starts the file at the earliest first buffer of its
  // tracks; rewriting timestamps upstream would fall outside the depayloader's segment.
  g_object_set(m, "streamable", TRUE, "offset-to-zero", TRUE, nullptr);
  GstElement* file = live_sink("filesink", false);
  g_object_set(file, "location", opts_.output.c_str(), nullptr);
  gst_bin_add_many(GST_BIN(pipeline), m, file, nullptr);
  link_elements(m, file);
  mux_ = m;
  if (video) mux_video_ = gst_element_request_pad_simple(m, "video_%u");
  if (audio && opts_.audio) mux_audio_ = gst_element_request_pad_simple(m, "audio_%u");
  gst_element_sync_state_with_parent(file);
  gst_element_sync_state_with_parent(m);
}

bool LocalOutput::build_video(GstElement* pipeline, GstElement* tee, const std::string& codec) {
  {
    std::lock_guard lock(mutex_);
    if (video_built_) return false;
    video_built_ = true;
  }
  return link_from_tee(pipeline, tee, video_chain(codec));
}

bool LocalOutput::build_audio(GstElement* pipeline, GstElement* tee) {
  {
    std::lock_guard lock(mutex_);
    if (audio_built_) return false;
    audio_built_ = true;
  }
  return link_from_tee(pipeline, tee, audio_chain());
}

void LocalOutput::release_unused_tracks() {
  std::lock_guard lock(mutex_);
  for (GstPad** pad : {&mux_video_, &mux_audio_}) {
    if (*pad == nullptr || mux_ == nullptr || gst_pad_is_linked(*pad)) continue;
    gst_element_release_request_pad(mux_, *pad);
    unref_pad(*pad);
  }
}

void LocalOutput::forget() {
  std::lock_guard lock(mutex_);
  unref_pad(mux_video_);
  unref_pad(mux_audio_);
  mux_ = nullptr;
}

std::optional<double> LocalOutput::take_decode_latency_ms() {
  std::lock_guard lock(mutex_);
  std::optional<double> out;
  if (decode_count_ > 0) out = decode_sum_ms_ / double(decode_count_);
  decode_sum_ms_ = 0;
  decode_count_ = 0;
  return out;
}

// Our own playback behind the video tee; none when we only count (and maybe relay).
LocalOutput::Chain LocalOutput::video_chain(const std::string& codec) {
  Chain chain;
  if (!opts_.decode) return chain;
  auto& c = chain.elements;
  c.push_back(make_element("queue"));  // every tee branch needs its own thread
  if (opts_.sink == WatchSink::record) {
    probe(c.back(), "src", &LocalOutput::count_video);
    if (codec == "H264") c.push_back(make_element("h264parse"));
    std::lock_guard lock(mutex_);
    if (mux_video_ == nullptr) c.push_back(live_sink("fakesink", false));
    chain.mux_pad = mux_video_;
    return chain;
  }
  if (codec == "H264") c.push_back(make_element("h264parse"));
  GstElement* dec = make_element(decoder(codec));
  probe(dec, "sink", &LocalOutput::into_decoder);
  probe(dec, "src", &LocalOutput::out_of_decoder);
  c.push_back(dec);
  switch (opts_.sink) {
    case WatchSink::null:
    case WatchSink::record:
      c.push_back(live_sink("fakesink", false));
      break;
    case WatchSink::ascii: {
      c.push_back(make_element("queue"));
      c.push_back(make_element("videoconvert"));
      GstElement* aa = live_sink("aasink", true);
      g_object_set(aa, "driver", 4 /* stdout */, nullptr);
      c.push_back(aa);
      break;
    }
    case WatchSink::display:
      c.push_back(make_element("queue"));
      c.push_back(make_element("videoconvert"));
      c.push_back(live_sink("autovideosink", true));
      break;
  }
  return chain;
}

LocalOutput::Chain LocalOutput::audio_chain() {
  Chain chain;
  if (!opts_.decode) return chain;
  auto& c = chain.elements;
  c.push_back(make_element("queue"));
  if (opts_.sink == WatchSink::record) {
    probe(c.back(), "src", &LocalOutput::count_audio);
    c.push_back(make_element("opusparse"));
    std::lock_guard lock(mutex_);
    if (mux_audio_ == nullptr) c.push_back(live_sink("fakesink", false));
    chain.mux_pad = mux_audio_;
    return chain;
  }
  GstElement* dec = make_element("opusdec");
  probe(dec, "src", &LocalOutput::count_audio);
  c.push_back(dec);
  if (opts_.sink == WatchSink::display) {
    c.push_back(make_element("queue"));
    c.push_back(make_element("audioconvert"));
    c.push_back(make_element("audioresample"));
    c.push_back(live_sink("autoaudiosink", true));
  } else {
    c.push_back(live_sink("fakesink", false));
  }
  return chain;
}

// Adds and links the chain (and its muxer pad), starts it downstream first, then links a new
// tee pad into it.
bool LocalOutput::link_from_tee(GstElement* pipeline, GstElement* tee, const Chain& chain) {
  const auto& c = chain.elements;
  if (c.empty()) return false;
  for (GstElement* e : c) gst_bin_add(GST_BIN(pipeline), e);
  for (std::size_t i = 0; i + 1 < c.size(); ++i) link_elements(c[i], c[i + 1]);
  if (chain.mux_pad != nullptr) {
    GstPad* out = gst_element_get_static_pad(c.back(), "src");
    GstPadLinkReturn r = gst_pad_link(out, chain.mux_pad);
    gst_object_unref(out);
    if (r != GST_PAD_LINK_OK) {
      throw RuntimeError(std::string("cannot record this stream into ") + opts_.output + " (" +
                         gst_pad_link_get_name(r) + "); H.264 needs a .mkv file");
    }
  }
  for (auto it = c.rbegin(); it != c.rend(); ++it) gst_element_sync_state_with_parent(*it);
  GstPad* tpad = gst_element_request_pad_simple(tee, "src_%u");
  GstPad* sink = gst_element_get_static_pad(c.front(), "sink");
  GstPadLinkReturn r = gst_pad_link(tpad, sink);
  gst_object_unref(sink);
  gst_object_unref(tpad);
  if (r != GST_PAD_LINK_OK) {
    throw RuntimeError(std::string("cannot link the received stream: ") + gst_pad_link_get_name(r));
  }
  return chain.mux_pad != nullptr;
}

void LocalOutput::probe(GstElement* e, const char* pad_name, GstPadProbeCallback cb) {
  GstPad* pad = gst_element_get_static_pad(e, pad_name);
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, cb, this, nullptr);
  gst_object_unref(pad);
}

void LocalOutput::frame_out() {
  if (frames_.fetch_add(1, std::memory_order_relaxed) == 0) {
    std::int64_t expected = -1;
    first_frame_us_.compare_exchange_strong(expected, monotonic_us());
  }
}

// ---- probes (streaming threads) ----

GstPadProbeReturn LocalOutput::count_video(GstPad*, GstPadProbeInfo*, gpointer d) {
  static_cast<LocalOutput*>(d)->frame_out();
  return GST_PAD_PROBE_OK;
}

GstPadProbeReturn LocalOutput::count_audio(GstPad*, GstPadProbeInfo*, gpointer d) {
  static_cast<LocalOutput*>(d)->audio_.fetch_add(1, std::memory_order_relaxed);
  return GST_PAD_PROBE_OK;
}

GstPadProbeReturn LocalOutput::into_decoder(GstPad*, GstPadProbeInfo* info, gpointer d) {
  auto* self = static_cast<LocalOutput*>(d);
  GstClockTime pts = GST_BUFFER_PTS(GST_PAD_PROBE_INFO_BUFFER(info));
  if (!GST_CLOCK_TIME_IS_VALID(pts)) return GST_PAD_PROBE_OK;
  std::lock_guard lock(self->mutex_);
  self->in_decoder_.emplace_back(pts, monotonic_us());
  while (self->in_decoder_.size() > 64) self->in_decoder_.pop_front();  // frames the decoder dropped
  return GST_PAD_PROBE_OK;
}

GstPadProbeReturn LocalOutput::out_of_decoder(GstPad* pad, GstPadProbeInfo* info, gpointer d) {
  auto* self = static_cast<LocalOutput*>(d);
  GstBuffer* buf = GST_PAD_PROBE_INFO_BUFFER(info);
  GstClockTime pts = GST_BUFFER_PTS(buf);
  std::int64_t now = monotonic_us();
  {
    std::lock_guard lock(self->mutex_);
    auto& q = self->in_decoder_;
    auto it = std::find_if(q.begin(), q.end(), [&](const auto& e) { return e.first == pts; });
    if (it != q.end()) {
      self->decode_sum_ms_ += double(now - it->second) / 1000.0;
      ++self->decode_count_;
      q.erase(q.begin(), it + 1);
    }
  }
  self->frame_out();
  if (self->opts_.on_video_frame) self->deliver_frame(pad, buf);
  return GST_PAD_PROBE_OK;
}

void LocalOutput::deliver_frame(GstPad* pad, GstBuffer* buf) {
  GstCaps* caps = gst_pad_get_current_caps(pad);
  if (caps == nullptr) return;
  GstVideoInfo info;
  bool ok = gst_video_info_from_caps(&info, caps);
  gst_caps_unref(caps);
  GstVideoFrame frame;
  if (!ok || !gst_video_frame_map(&frame, &info, buf, GST_MAP_READ)) return;
  RawFrame raw{static_cast<std::uint8_t*>(GST_VIDEO_FRAME_PLANE_DATA(&frame, 0)), GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 0),
               GST_VIDEO_FRAME_WIDTH(&frame), GST_VIDEO_FRAME_HEIGHT(&frame)};
  opts_.on_video_frame(raw);
  gst_video_frame_unmap(&frame);
}

}  // namespace p2p::media
