// media/gst_util: GStreamer init, main-context marshalling, checked element creation and links.
#include "media/gst_util.hpp"

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <utility>

#include "util/error.hpp"

namespace p2p::media {

void ensure_gst_init() {
  static std::once_flag once;
  static std::string failure;
  std::call_once(once, [] {
    GError* err = nullptr;
    if (!gst_init_check(nullptr, nullptr, &err)) {
      failure = err != nullptr ? err->message : "unknown error";
      g_clear_error(&err);
    }
  });
  if (!failure.empty()) throw RuntimeError("GStreamer failed to initialise: " + failure);
}

namespace {

gboolean run_once(gpointer data) {
  (*static_cast<std::function<void()>*>(data))();
  return G_SOURCE_REMOVE;
}

gboolean run_repeating(gpointer data) {
  return (*static_cast<std::function<bool()>*>(data))() ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

template <class F>
void delete_fn(gpointer data) {
  delete static_cast<F*>(data);
}

}  // namespace

void post(GMainContext* ctx, std::function<void()> fn) {
  GSource* src = g_idle_source_new();
  g_source_set_priority(src, G_PRIORITY_DEFAULT);
  g_source_set_callback(src, run_once, new std::function<void()>(std::move(fn)),
                        delete_fn<std::function<void()>>);
  g_source_attach(src, ctx);
  g_source_unref(src);
}

Timer::Timer(GMainContext* ctx, unsigned interval_ms, std::function<bool()> fn) {
  source_ = g_timeout_source_new(interval_ms);
  auto* holder = new std::function<bool()>(std::move(fn));
  g_source_set_callback(source_, run_repeating, holder, delete_fn<std::function<bool()>>);
  g_source_attach(source_, ctx);
}

Timer::~Timer() { cancel(); }

Timer::Timer(Timer&& other) noexcept : source_(std::exchange(other.source_, nullptr)) {}

Timer& Timer::operator=(Timer&& other) noexcept {
  if (this != &other) {
    cancel();
    source_ = std::exchange(other.source_, nullptr);
  }
  return *this;
}

void Timer::cancel() {
  if (source_ == nullptr) return;
  g_source_destroy(source_);
  g_source_unref(source_);
  source_ = nullptr;
}

bool iterate_until(GMainContext* ctx, const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  Timer wake(ctx != nullptr ? ctx : g_main_context_default(), 10, [] { return true; });  // bounds each wait
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    g_main_context_iteration(ctx, TRUE);
  }
  return true;
}

bool have_element(const char* factory) {
  ensure_gst_init();
  GstElementFactory* f = gst_element_factory_find(factory);
  if (f == nullptr) return false;
  gst_object_unref(f);
  return true;
}

GstElement* make_element(const char* factory, const char* name) {
  ensure_gst_init();
  GstElement* e = gst_element_factory_make(factory, name);
  if (e == nullptr) {
    throw RuntimeError(std::string("GStreamer element '") + factory +
                       "' is missing; install the GStreamer plugins (scripts/install-deps.sh)");
  }
  return e;
}

GstPad* link_tee_to(GstElement* tee, GstElement* bin, const char* ghost, const char* what) {
  GstPad* tpad = gst_element_request_pad_simple(tee, "src_%u");
  GstPad* sink = gst_element_get_static_pad(bin, ghost);
  GstPadLinkReturn r = gst_pad_link(tpad, sink);
  gst_object_unref(sink);
  if (r != GST_PAD_LINK_OK) {
    gst_element_release_request_pad(tee, tpad);
    gst_object_unref(tpad);
    throw RuntimeError(std::string("cannot link the tee to ") + what + ": " + gst_pad_link_get_name(r));
  }
  return tpad;
}

bool has_property(GstElement* e, const char* name) {
  return g_object_class_find_property(G_OBJECT_GET_CLASS(e), name) != nullptr;
}

void unref_pad(GstPad*& pad) {
  if (pad != nullptr) gst_object_unref(pad);
  pad = nullptr;
}

GSource* watch_bus(GstElement* pipeline, GstBusFunc fn, gpointer data, GMainContext* ctx) {
  GstBus* bus = gst_pipeline_get_bus(GST_PIPELINE(pipeline));
  GSource* source = gst_bus_create_watch(bus);
  g_source_set_callback(source, G_SOURCE_FUNC(fn), data, nullptr);
  g_source_attach(source, ctx);
  gst_object_unref(bus);
  return source;
}

void link_elements(GstElement* a, GstElement* b) {
  if (!gst_element_link(a, b)) {
    throw RuntimeError(std::string("cannot link GStreamer elements ") + GST_ELEMENT_NAME(a) +
                       " -> " + GST_ELEMENT_NAME(b) + " (incompatible formats)");
  }
}

namespace {
std::string pad_name(GstPad* pad) {
  GstObject* parent = gst_pad_get_parent(pad);
  std::string out = parent != nullptr ? std::string(GST_OBJECT_NAME(parent)) + ":" : std::string();
  if (parent != nullptr) gst_object_unref(parent);
  return out + GST_OBJECT_NAME(pad);
}
}  // namespace

void link_pads(GstPad* src, GstPad* sink) {
  GstPadLinkReturn r = gst_pad_link(src, sink);
  if (r != GST_PAD_LINK_OK) {
    throw RuntimeError("cannot link GStreamer pads " + pad_name(src) + " -> " + pad_name(sink) + ": " + gst_pad_link_get_name(r));
  }
}

GstElement* parse_bin(const std::string& description, bool ghost_unlinked_pads) {
  ensure_gst_init();
  GError* err = nullptr;
  GstElement* bin = gst_parse_bin_from_description(description.c_str(), ghost_unlinked_pads, &err);
  if (bin == nullptr || err != nullptr) {
    std::string msg = err != nullptr ? err->message : "unknown error";
    g_clear_error(&err);
    if (bin != nullptr) gst_object_unref(bin);
    throw UsageError("bad GStreamer pipeline '" + description + "': " + msg);
  }
  return bin;
}

bool display_available() {
  const char* x = std::getenv("DISPLAY");
  const char* w = std::getenv("WAYLAND_DISPLAY");
  return (x != nullptr && *x != '\0') || (w != nullptr && *w != '\0');
}

void set_null_with_watchdog(GstElement* element, unsigned timeout_ms) {
  struct State {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
  };
  auto st = std::make_shared<State>();
  std::string name = GST_ELEMENT_NAME(element);
  std::thread dog([st, timeout_ms, name] {
    std::unique_lock lock(st->m);
    if (!st->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return st->done; })) {
      std::fprintf(stderr, "p2pstream: GStreamer shutdown of %s hung for %u ms; exiting\n",
                   name.c_str(), timeout_ms);
      std::fflush(stderr);
      std::_Exit(static_cast<int>(Exit::runtime));
    }
  });
  gst_element_set_state(element, GST_STATE_NULL);
  {
    std::lock_guard lock(st->m);
    st->done = true;
  }
  st->cv.notify_all();
  dog.join();
}

void preload_plugins() {
  ensure_gst_init();
  // In the order a watcher needs them, since GStreamer loads one plugin at a time: the peer
  // connection's (webrtcbin makes its RED/FEC decoders from "rtp" before it answers), then the
  // depayloaders, parsers and decoders.
  for (const char* p : {"webrtc", "nice", "rtpmanager", "srtp", "dtls", "rtp", "vpx", "opus", "videoparsersbad"}) {
    if (GstPlugin* plugin = gst_plugin_load_by_name(p)) gst_object_unref(plugin);
  }
}

void preload_h264_decoder() {
  ensure_gst_init();
  if (GstPlugin* plugin = gst_plugin_load_by_name("libav")) gst_object_unref(plugin);
}

std::int64_t monotonic_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

}  // namespace p2p::media
