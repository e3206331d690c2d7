// cli/live_loop: the GLib main loop that `broadcast` and `watch` run on, quit by SIGINT or
// SIGTERM (remembered, so the command can tell an interrupt from a normal end).
#pragma once
#include <glib-unix.h>

#include <csignal>

namespace p2p::cli {

struct LiveLoop {
  GMainLoop* loop = g_main_loop_new(nullptr, FALSE);
  bool interrupted = false;
  guint sigint = g_unix_signal_add(SIGINT, &LiveLoop::on_signal, this);
  guint sigterm = g_unix_signal_add(SIGTERM, &LiveLoop::on_signal, this);
  LiveLoop() = default;
  LiveLoop(const LiveLoop&) = delete;
  LiveLoop& operator=(const LiveLoop&) = delete;
  ~LiveLoop() {
    g_source_remove(sigint);
    g_source_remove(sigterm);
    g_main_loop_unref(loop);
  }
  static gboolean on_signal(gpointer p) {
    auto* self = static_cast<LiveLoop*>(p);
    self->interrupted = true;
    g_main_loop_quit(self->loop);
    return G_SOURCE_CONTINUE;
  }
  void quit() { g_main_loop_quit(loop); }
  void run() { g_main_loop_run(loop); }
};

}  // namespace p2p::cli
