// p2pstream watch: receives a stream over WebRTC through the signalling server and decodes,
// records, renders or only counts it, printing stats; optionally relays it to other watchers.
#include <glib-unix.h>

#include <csignal>
#include <iostream>

#include "common.hpp"
#include "live_loop.hpp"
#include "media/gst_util.hpp"
#include "media/options.hpp"
#include "media/watcher.hpp"
#include "signal_client/w3b_signaller.hpp"
#include "util/error.hpp"

namespace p2p::cli {
namespace {

struct WatchArgs {
  std::string stream;
  std::string output;
  bool display = false, ascii = false, null_sink = false;
  std::string stats;  // "" (off), "true" or "text" (--stats), "json", "false"
  std::optional<double> duration_s;
  unsigned latency_ms = 50;
  unsigned relay = 0;
  bool no_wait = false;
  LiveFlags live;
};


std::string short_id(const std::string& id) { return id.size() > 14 ? id.substr(0, 10) + "…" + id.substr(id.size() - 4) : id; }

void run(const Common& c, WatchArgs a) {
  if (a.stats == "true") a.stats = "text";  // a bare --stats
  if (a.stats == "false") a.stats.clear();
  if (!a.stats.empty() && a.stats != "text" && a.stats != "json")
    throw UsageError("--stats takes no value, =text or =json, not '" + a.stats + "'");
  if (a.duration_s && !(*a.duration_s > 0 && *a.duration_s <= 7 * 86400.0))
    throw UsageError("--duration must be between 0 and 604800 seconds");
  media::WatchOptions wo;
  wo.sink = media::choose_sink(!a.output.empty(), a.display, a.ascii, a.null_sink);
  wo.output = a.output;
  wo.latency_ms = a.latency_ms;
  wo.ice.stun = a.live.stun;
  wo.ice.turn = a.live.turn;
  wo.relay_slots = a.relay;
  wo.validate();

  auto s = make_session(c);
  use_stored_dtls_key(s, a.live);
  signal_client::W3bOptions so;
  so.client.url = signal_url(s, a.live);
  so.client.tls_insecure = a.live.tls_insecure;
  so.role = signal_client::W3bRole::watcher;
  so.key = s.signer();
  so.stream_id = a.stream;
  so.relay_slots = a.relay;
  so.wait_for_start = !a.no_wait;
  const std::string me = address(so.key.public_key());
  const std::string url = so.client.url;
  signal_client::W3bSignaller sig(std::move(so));
  std::signal(SIGPIPE, SIG_IGN);

  LiveLoop loop;
  StatusLine status(c);
  media::Watcher w(wo, sig);  // UsageError here for --display without a display
  std::optional<media::WatchEnd> end;
  std::string end_message, waiting_reason;
  // --ascii draws on stdout, so its stats go to stderr.
  std::ostream& stats_out = a.ascii ? std::cerr : std::cout;
  const bool live_status = a.stats.empty() && !a.ascii && status.tty();
  w.set_on_end([&](media::WatchEnd why, const std::string& m) {
    end = why;
    end_message = m;
    g_main_loop_quit(loop.loop);
  });
  w.set_on_stats([&](const media::WatchStats& st0) {
    media::WatchStats st = st0;
    if (st.parent.empty() && !sig.parent().empty()) {  // a watcher that does not track placement itself
      st.parent = sig.parent();
      st.depth = sig.depth() ? sig.depth() : 1;
    }
    if (a.stats == "json") stats_out << media::to_json(st) << std::endl;
    else if (a.stats == "text") stats_out << media::to_text(st) << std::endl;
    if (live_status)
      status.update(fmt::format("{} · {:.1f} fps · {:.0f} kbit/s · frames {} · lost {}", st.state, st.fps,
                                st.bitrate_kbps, st.frames_decoded, st.packets_lost));
  });
  media::SignallerEvents seen;
  seen.notice = [&](const std::string& m) {
    if (m.find("hasn't started yet") != std::string::npos) waiting_reason = m.substr(0, m.find(": waiting"));
    status.message("signal: " + m);
  };
  seen.placement = [&](const std::string& parent, unsigned depth) {
    status.message(fmt::format("placed under {} at depth {}{}", short_id(parent), depth,
                               depth == 1 ? " (the broadcaster)" : " (a relaying watcher)"));
  };
  sig.set_observer(std::move(seen));

  std::optional<media::Timer> deadline;
  bool timed_out = false;
  if (a.duration_s) {
    deadline.emplace(nullptr, static_cast<unsigned>(*a.duration_s * 1000), [&] {
      timed_out = true;
      g_main_loop_quit(loop.loop);
      return false;
    });
  }
  status.message(fmt::format("watching {} as {} via {}", a.stream, me, url));
  w.start();
  g_main_loop_run(loop.loop);
  deadline.reset();
  const bool got_offer = !w.session().empty();
  if (!end) w.stop();  // sends stopWatching
  media::iterate_until(nullptr, [] { return false; }, std::chrono::milliseconds(200));  // let it go out
  status.finish();
  report_dtls_key(c);

  if (end == media::WatchEnd::error) {
    if (sig.failure() == signal_client::W3bSignaller::Failure::refused) throw RefusedError(end_message);
    if (sig.failure() == signal_client::W3bSignaller::Failure::unreachable) throw UnreachableError(end_message);
    throw RuntimeError(end_message);
  }
  if (timed_out && !got_offer) {
    if (!waiting_reason.empty())
      throw RefusedError(fmt::format("{} (waited {} s)", waiting_reason, *a.duration_s));
    throw RuntimeError(fmt::format("no offer arrived within --duration {} s: is anyone broadcasting it?", *a.duration_s));
  }
  std::string why = end ? end_message : timed_out ? "--duration elapsed" : "interrupted";
  status.message(fmt::format("stopped ({}): {} video frames, {} audio buffers{}", why, w.frames(), w.audio_buffers(),
                             a.output.empty() ? "" : ", recorded to " + a.output));
}

}  // namespace

void register_watch(CLI::App& app, Common& c) {
  auto a = std::make_shared<WatchArgs>();
  auto* sub = app.add_subcommand("watch", "Watch a stream over WebRTC: decode, record, render or relay it");
  sub->add_option("STREAM_ID", a->stream, "The stream's id (see `p2pstream streams --live`)")->required();
  sub->add_option("--output", a->output, "Record to FILE.mkv or FILE.webm (VP8 only) without re-encoding");
  sub->add_flag("--display", a->display, "Show the video in a window (needs a display)");
  sub->add_flag("--ascii", a->ascii, "Render the video as ASCII art on stdout");
  sub->add_flag("--null", a->null_sink, "Decode and drop (the default when no sink is chosen)");
  sub->add_flag("--stats", a->stats,
                "Print fps, bitrate, packets lost, jitter, RTT and decode latency once a second on stdout; "
                "--stats=json prints JSON lines (with depth, parent, frames, children)");
  sub->add_option("--duration", a->duration_s, "Stop after S seconds (exit 0 if the stream was received)");
  sub->add_option("--latency", a->latency_ms, "Jitter buffer in ms per tree level (x depth under relays); NACK retransmission needs 50 or more")
      ->capture_default_str();
  sub->add_option("--relay", a->relay, "Forward the stream to up to K other watchers (0-8) without re-encoding")
      ->capture_default_str();
  sub->add_flag("--no-wait", a->no_wait, "Fail (exit 3) if the stream has not started, instead of waiting for it");
  add_live_flags(*sub, a->live);
  add_output_flags(*sub, c, false);
  sub->add_option("--account", c.over.account, "Key that watches (must subscribe to the broadcaster) [env P2PSTREAM_ACCOUNT, config account]");
  sub->footer(
      "You must subscribe to the broadcaster first (p2pstream subscribe). If the stream has not started,\n"
      "watch says so and waits for it (--no-wait: exit 3 instead). Placement in a relay tree and server\n"
      "notices go to stderr. Exit 0 when the broadcaster stops, on Ctrl-C or after --duration; 3 when\n"
      "the server refuses (not subscribed, or not started with --no-wait), 4 when it cannot be reached.\n"
      "Examples:\n"
      "  p2pstream watch 1764000000000Talk --display\n"
      "  p2pstream watch ID --output talk.mkv --stats\n"
      "  p2pstream watch ID --null --stats=json --duration 30\n"
      "  p2pstream watch ID --ascii --latency 200\n"
      "  p2pstream watch ID --relay 4 --null   # help the broadcaster serve more people");
  sub->callback([&c, a] { run(c, *a); });
}

}  // namespace p2p::cli
