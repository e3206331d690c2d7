// p2pstream broadcast: serves a stream's video and audio to its watchers over WebRTC, through the
// signalling server, until Ctrl-C/SIGTERM, the end of a file source, or (--at-schedule) its end time.
#include <glib-unix.h>

#include <csignal>
#include <iostream>

#include "common.hpp"
#include "live_loop.hpp"
#include "media/broadcaster.hpp"
#include "media/gst_util.hpp"
#include "media/options.hpp"
#include "signal_client/w3b_signaller.hpp"
#include "timespec/timespec.hpp"
#include "util/error.hpp"

namespace p2p::cli {
namespace {

struct BroadcastArgs {
  std::string stream;
  std::string source = "test";
  std::string video = "vp8";
  std::string bitrate = "1500k";
  std::string size = "640x480";
  unsigned fps = 30;
  bool no_audio = false;
  unsigned max_direct = 0;
  bool at_schedule = false;
  LiveFlags live;
};


// Quits the loop at a wall-clock time (checked often, so a suspended machine wakes up right).
struct Alarm {
  LiveLoop& loop;
  std::uint64_t at_ms;
  std::function<void()> on_tick;
  bool rang = false;
  media::Timer timer;
  Alarm(LiveLoop& l, std::uint64_t at, std::function<void()> tick) : loop(l), at_ms(at), on_tick(std::move(tick)) {
    timer = media::Timer(nullptr, 200, [this] {
      if (timespec::now_ms() >= at_ms) {
        rang = true;
        loop.quit();
        return false;
      }
      if (on_tick) on_tick();
      return true;
    });
  }
};

struct Window {
  std::uint64_t start = 0, end = 0;
  std::string title;
};

// --at-schedule: the stream's times, after checking it exists, is ours and has not ended.
Window scheduled_window(session::Session& s, const std::string& id, const keys::PublicKey& me) {
  auto state = w3b::Client(s.transport(), s.program_id()).state();
  const w3b::Stream* x = state.find_stream(id);
  if (!x) throw UsageError(fmt::format("no stream with id '{}' on {}: see `p2pstream streams`", id, s.endpoint()));
  if (x->broadcaster != me)
    throw RefusedError(fmt::format("stream {} belongs to {}, not to your account {}: use --account", id,
                                   address(x->broadcaster), address(me)));
  if (timespec::now_ms() >= x->end_time)
    throw RefusedError(fmt::format("stream {} already ended at {}: schedule a new one", id,
                                   timespec::format_local(x->end_time)));
  return {x->start_time, x->end_time, x->title};
}

std::string status_text(const media::BroadcastStats& st) {
  std::string rtt = st.worst_rtt_ms ? fmt::format(" · rtt {:.0f} ms", *st.worst_rtt_ms) : "";
  return fmt::format("live {} · watchers {} ({} connected) · {:.0f}/{} kbit/s · {:.1f} fps · frames {}{}{}",
                     timespec::format_duration(static_cast<std::uint64_t>(st.elapsed_s) * 1000), st.watchers,
                     st.connected, st.sent_kbps, st.target_kbps, st.fps, st.frames_sent,
                     st.worst_loss > 0 ? fmt::format(" · loss {:.1f}%", 100 * st.worst_loss) : "", rtt);
}

void run(const Common& c, const BroadcastArgs& a) {
  media::BroadcastOptions bo;
  bo.source = a.source;
  bo.video = media::parse_video_codec(a.video);
  bo.bitrate_kbps = media::parse_bitrate_kbps(a.bitrate);
  bo.size = media::parse_size(a.size);
  bo.fps = a.fps;
  bo.audio = !a.no_audio;
  bo.ice.stun = a.live.stun;
  bo.ice.turn = a.live.turn;
  bo.max_direct = a.max_direct;
  bo.validate();  // flag mistakes first, before a passphrase prompt

  auto s = make_session(c);
  use_stored_dtls_key(s, a.live);
  std::optional<Window> window;
  if (a.at_schedule) window = scheduled_window(s, a.stream, s.keystore().info(s.account_name()).public_key);
  signal_client::W3bOptions wo;
  wo.client.url = signal_url(s, a.live);
  wo.client.tls_insecure = a.live.tls_insecure;
  wo.role = signal_client::W3bRole::broadcaster;
  wo.key = s.signer();
  wo.stream_id = a.stream;
  wo.relay_slots = a.max_direct;
  const std::string me = address(wo.key.public_key());
  const std::string url = wo.client.url;
  signal_client::W3bSignaller sig(std::move(wo));
  std::signal(SIGPIPE, SIG_IGN);

  LiveLoop loop;
  StatusLine status(c);
  if (window && timespec::now_ms() < window->start) {
    status.message(fmt::format("'{}' starts at {}; waiting (Ctrl-C to give up)", window->title,
                               timespec::format_local(window->start)));
    std::uint64_t shown = 0;
    Alarm start(loop, window->start, [&] {
      std::uint64_t left_s = (window->start - std::min(window->start, timespec::now_ms()) + 999) / 1000;
      // A line a second on a terminal; in a log, every 30 s and the last 5.
      if (left_s == shown || (!status.tty() && left_s % 30 != 0 && left_s > 5)) return;
      shown = left_s;
      status.update(fmt::format("starts in {}", timespec::format_duration(left_s * 1000)));
    });
    loop.run();
    if (loop.interrupted) {
      status.message("interrupted before the start; nothing was broadcast");
      return;
    }
  }

  media::Broadcaster b(bo, sig);
  std::string error;
  bool eos = false;
  unsigned peak = 0;
  media::BroadcastStats last{};
  b.set_on_error([&](const std::string& m) {
    error = m;
    loop.quit();
  });
  b.set_on_eos([&] {
    eos = true;
    loop.quit();
  });
  b.set_on_stats([&](const media::BroadcastStats& st) {
    last = st;
    peak = std::max(peak, st.watchers);
    if (c.json) std::cout << media::to_json(st) << std::endl;
    status.update(status_text(st));
  });
  b.set_on_session([&](const std::string& session, const std::string& state) {
    if (c.verbose > 0) status.message(fmt::format("watcher {}: {}", session, state));
  });
  media::SignallerEvents seen;
  seen.notice = [&](const std::string& m) { status.message("signal: " + m); };
  sig.set_observer(std::move(seen));

  b.start();
  status.message(fmt::format("broadcasting {} as {} via {} ({} {}x{}@{}, {} kbit/s{})", a.stream, me, url,
                             media::to_string(bo.video), bo.size.width, bo.size.height, bo.fps, bo.bitrate_kbps,
                             bo.audio ? " + opus" : ", no audio"));
  if (c.verbose > 0) status.message("pipeline: " + b.pipeline_description());
  std::optional<Alarm> end;
  if (window) end.emplace(loop, window->end, nullptr);
  loop.run();
  bool scheduled_end = end && end->rang;
  end.reset();
  b.stop();  // sends stopBroadcasting
  media::iterate_until(nullptr, [] { return false; }, std::chrono::milliseconds(200));  // let it go out

  std::string why = !error.empty() ? "failed"
                    : eos          ? "end of the source"
                    : scheduled_end ? "the scheduled end"
                                    : "interrupted";
  status.finish();
  report_dtls_key(c);
  if (c.json)
    std::cout << nlohmann::json{{"stopped", why}, {"elapsed_s", last.elapsed_s}, {"frames_sent", last.frames_sent},
                                {"peak_watchers", peak}}
                     .dump()
              << std::endl;
  if (!error.empty()) {
    if (sig.failure() == signal_client::W3bSignaller::Failure::refused) throw RefusedError(error);
    if (sig.failure() == signal_client::W3bSignaller::Failure::unreachable) throw UnreachableError(error);
    throw RuntimeError(error);
  }
  status.message(fmt::format("stopped ({}): {} frames sent, at most {} watcher{} at once", why, last.frames_sent, peak,
                             peak == 1 ? "" : "s"));
}

}  // namespace

void register_broadcast(CLI::App& app, Common& c) {
  auto a = std::make_shared<BroadcastArgs>();
  auto* sub = app.add_subcommand("broadcast", "Broadcast a stream over WebRTC (GStreamer) to its subscribers");
  sub->add_option("STREAM_ID", a->stream, "The stream's id (from `p2pstream schedule` or `streams`)")->required();
  sub->add_option("--source", a->source,
                  "test (test pattern and tone), file:PATH, v4l2:/dev/videoN, uri:URL or pipeline:'GST-LAUNCH TEXT'")
      ->capture_default_str();
  sub->add_option("--video", a->video, "Video codec: vp8 or h264")->capture_default_str();
  sub->add_option("--bitrate", a->bitrate, "Video bitrate ceiling, e.g. 800k, 2M; lowered while watchers report loss")
      ->capture_default_str();
  sub->add_option("--size", a->size, "Frame size WIDTHxHEIGHT, e.g. 1280x720")->capture_default_str();
  sub->add_option("--fps", a->fps, "Frames per second (1-120)")->capture_default_str();
  sub->add_flag("--no-audio", a->no_audio, "Send video only");
  sub->add_option("--max-direct", a->max_direct,
                  "Serve at most N watchers directly; the server places the rest under watchers that relay. "
                  "0: no limit")
      ->capture_default_str();
  sub->add_flag("--at-schedule", a->at_schedule,
                "Wait for the stream's start time on chain, broadcast, and stop at its end time");
  add_live_flags(*sub, a->live);
  add_output_flags(*sub, c, false);
  sub->add_flag("--json", c.json, "Also print the status as one JSON object a second on stdout, and a summary at the end");
  sub->add_option("--endpoint", c.over.endpoint, "Chain that --at-schedule reads: ledger (default), mainnet, testnet, local "
                                                 "or a node URL [env P2PSTREAM_ENDPOINT]");
  sub->add_option("--program", c.over.program, "W3Bstreaming program id, 0x + 64 hex [env P2PSTREAM_PROGRAM]");
  sub->add_option("--account", c.over.account, "Key that broadcasts (the stream's owner) [env P2PSTREAM_ACCOUNT, config account]");
  sub->footer(
      "The stream must exist on the chain the signalling server reads, and belong to --account.\n"
      "Status goes to stderr once a second (watchers, bitrate, fps, frames sent); --json also prints\n"
      "one JSON object per second on stdout and a summary at the end. Ctrl-C, SIGTERM or the end of a\n"
      "file source stop the broadcast cleanly (exit 0). Exit 3 when the server refuses (not your\n"
      "stream, already live), 4 when it cannot be reached.\n"
      "Examples:\n"
      "  p2pstream broadcast 1764000000000Talk --source test\n"
      "  p2pstream broadcast ID --source v4l2:/dev/video0 --video h264 --bitrate 2M --size 1280x720\n"
      "  p2pstream broadcast ID --source file:talk.mp4 --signal https://signal.example.org\n"
      "  p2pstream broadcast ID --source \"pipeline:videotestsrc pattern=ball\" --no-audio --at-schedule\n"
      "  p2pstream broadcast ID --max-direct 4   # larger audiences through watchers with --relay");
  sub->callback([&c, a] { run(c, *a); });
}

}  // namespace p2p::cli
