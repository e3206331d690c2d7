// media/gst_util: small GStreamer/GLib helpers shared by the broadcaster, the watcher and the
// loopback signaller: init, marshalling to the main context, checked element creation and links.
#pragma once
#include <gst/gst.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>

namespace p2p::media {

// gst_init once per process; throws RuntimeError when GStreamer cannot start.
void ensure_gst_init();

// Runs fn later on ctx's thread (never inline, even when called from that thread), so webrtcbin
// signals and promise replies reach our code on the main loop and callers are never re-entered.
void post(GMainContext* ctx, std::function<void()> fn);

// Runs ctx's loop (nullptr: the default context) on this thread until done() or the timeout;
// returns done(). For tests, benchmarks and short CLI waits.
bool iterate_until(GMainContext* ctx, const std::function<bool()>& done, std::chrono::milliseconds timeout);

// A repeating timer on a context; fn returns false to stop. Destroying the Timer cancels it.
class Timer {
 public:
  Timer() = default;
  Timer(GMainContext* ctx, unsigned interval_ms, std::function<bool()> fn);
  ~Timer();
  Timer(Timer&& other) noexcept;
  Timer& operator=(Timer&& other) noexcept;
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  void cancel();
  bool active() const { return source_ != nullptr; }

 private:
  GSource* source_ = nullptr;
};

// Posts fn to ctx (as post) for an object that may be gone by then: fn runs only if it lives.
template <class T>
void post_while_alive(const std::weak_ptr<T>& weak, GMainContext* ctx, std::type_identity_t<std::function<void(T&)>> fn) {
  post(ctx, [weak, fn = std::move(fn)] {
    if (auto self = weak.lock()) fn(*self);
  });
}

// An event handler that calls `fn` on the media object while it lives and does nothing once it
// is gone: the signaller may outlive what it reports to.
template <class T, class... A>
auto while_alive(const std::weak_ptr<T>& weak, void (T::*fn)(A...)) {
  return [weak, fn](A... args) {
    if (auto self = weak.lock()) ((*self).*fn)(args...);
  };
}

// A Timer's callback: calls `fn` while the object lives, then stops the timer.
template <class T>
auto repeat_while_alive(const std::weak_ptr<T>& weak, void (T::*fn)()) {
  return [weak, fn] {
    auto self = weak.lock();
    if (self) ((*self).*fn)();
    return self != nullptr;
  };
}

// Owning reference to any GstObject (elements, pads, bins).
struct GstObjectUnref {
  void operator()(void* p) const { gst_object_unref(p); }
};
template <class T>
using GstRef = std::unique_ptr<T, GstObjectUnref>;

// Creates an element or throws a RuntimeError that names the package to install.
GstElement* make_element(const char* factory, const char* name = nullptr);
// True when the element factory is installed.
bool have_element(const char* factory);
// True when the element has a property of that name (versions and plugins differ).
bool has_property(GstElement* e, const char* name);
// Drops our reference to a pad, if any, and forgets it.
void unref_pad(GstPad*& pad);
// Watches the pipeline's bus on `ctx` (not necessarily the thread's default context): `fn`
// gets each message. The caller owns the returned source and destroys it at teardown.
GSource* watch_bus(GstElement* pipeline, GstBusFunc fn, gpointer data, GMainContext* ctx);

// Links or throws: an unchecked failed link means nothing flows and no error appears.
void link_elements(GstElement* a, GstElement* b);
void link_pads(GstPad* src, GstPad* sink);
// Links a new src pad of tee to bin's ghost pad and returns the tee pad (to release later), or
// releases it and throws a RuntimeError naming `what`.
GstPad* link_tee_to(GstElement* tee, GstElement* bin, const char* ghost, const char* what);

// Parses a bin description ("videotestsrc ! videoconvert") with ghost pads, or throws UsageError.
GstElement* parse_bin(const std::string& description, bool ghost_unlinked_pads);

// True when a window system is reachable; autovideosink crashes headless (dfbvideosink fallback).
bool display_available();

// Sets the element to NULL on the calling thread. rtpmanager can deadlock on shutdown, so a
// watchdog thread prints why and ends the process if NULL is not reached within timeout_ms.
void set_null_with_watchdog(GstElement* element, unsigned timeout_ms);

// Loads, on a helper thread at start-up, the plugins of the peer connection and of the
// depayloaders and decoders a watcher may use, so that neither the answer nor the first frame
// waits for a plugin load.
void preload_plugins();
// gst-libav (avdec_h264) takes 70-150 ms to load and blocks every other plugin load meanwhile, so
// it is loaded only once an offer holds H.264, beside ICE and DTLS.
void preload_h264_decoder();

// Microseconds of CLOCK_MONOTONIC (shared by all processes on the machine).
std::int64_t monotonic_us();

}  // namespace p2p::media
