// bench/media/media_bench: figures for lib/media on this machine.
//   latency      glass-to-glass: a stamp of CLOCK_MONOTONIC drawn into each raw frame before the
//                encoder and read back after the decoder (one process, loopback signaller)
//   first-frame  a fresh watcher process per run: time to its first decoded frame, split into
//                start -> session -> connected (ICE+DTLS) -> frame; --dtls-key stored (the CLI's
//                default: a key file made before the runs) or fresh (a new key per process)
//   fanout       broadcaster and N watchers (not decoding) in two processes, pinned to separate
//                CPUs: sender CPU per added viewer and frames lost per viewer
// Run through bench/media/run.sh.
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "media/broadcaster.hpp"
#include "media/dtls_key.hpp"
#include "media/frame_stamp.hpp"
#include "media/gst_util.hpp"
#include "media/loopback_signaller.hpp"
#include "media/watcher.hpp"
#include "pipe_signaller.hpp"

using namespace p2p::media;
using p2p::bench::PipeLink;
using namespace std::chrono_literals;

namespace {

struct Args {
  std::string mode;
  std::string codec = "vp8";
  int seconds = 15;
  int runs = 10;
  unsigned latency = 0;
  std::vector<int> viewers{8, 16, 32, 64};
  std::string dtls_key = "stored";  // first-frame: stored | fresh
  // child only
  std::string key_file;
  int fd = -1;
  int count = 1;
  bool decode = true;
  bool pin = sysconf(_SC_NPROCESSORS_ONLN) >= 2;
};

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(std::stoi(item));
  return out;
}

Args parse(int argc, char** argv) {
  Args a;
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: media_bench latency|first-frame|fanout [--codec vp8|h264] [--seconds N] [--runs N]\n"
                 "                   [--latency MS] [--viewers 8,16,32,64] [--pin 0|1] [--dtls-key stored|fresh]\n");
    std::exit(2);
  }
  a.mode = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--codec") a.codec = v;
    else if (k == "--seconds") a.seconds = std::stoi(v);
    else if (k == "--runs") a.runs = std::stoi(v);
    else if (k == "--latency") a.latency = unsigned(std::stoul(v));
    else if (k == "--viewers") a.viewers = parse_list(v);
    else if (k == "--fd") a.fd = std::stoi(v);
    else if (k == "--count") a.count = std::stoi(v);
    else if (k == "--decode") a.decode = v != "0";
    else if (k == "--pin") a.pin = v != "0";
    else if (k == "--dtls-key" && (v == "stored" || v == "fresh")) a.dtls_key = v;
    else if (k == "--key-file") a.key_file = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      std::exit(2);
    }
  }
  return a;
}

BroadcastOptions vga(const std::string& codec) {
  BroadcastOptions o;
  o.video = parse_video_codec(codec);
  o.size = {640, 480};
  o.fps = 30;
  o.bitrate_kbps = 1500;
  o.stats_interval_ms = 200;
  return o;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t i = std::min(v.size() - 1, std::size_t(p / 100.0 * double(v.size() - 1) + 0.5));
  return v[i];
}

// utime + stime of a process, in seconds.
double cpu_seconds(pid_t pid) {
  std::ifstream f(pid == 0 ? "/proc/self/stat" : "/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');  // the command name may hold spaces
  std::istringstream in(text.substr(close + 2));
  std::string field;
  unsigned long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoul(field);
    if (i == 15) stime = std::stoul(field);
  }
  return double(utime + stime) / double(sysconf(_SC_CLK_TCK));
}

void pump(std::chrono::milliseconds d) {
  iterate_until(nullptr, [] { return false; }, d);
}

// ---- latency ----

int run_latency(const Args& a) {
  LoopbackHub hub;
  BroadcastOptions bo = vga(a.codec);
  bo.before_encode = [](RawFrame& f) { write_stamp(f, std::uint64_t(monotonic_us()) & kStampMask); };
  auto bsig = hub.broadcaster();
  Broadcaster b(bo, *bsig);
  b.start();

  std::mutex m;
  std::vector<double> samples_ms;
  std::uint64_t unreadable = 0;
  std::atomic<bool> measuring{false};
  WatchOptions wo;
  wo.latency_ms = a.latency;
  wo.on_video_frame = [&](const RawFrame& f) {
    std::uint64_t now = std::uint64_t(monotonic_us()) & kStampMask;
    auto stamp = read_stamp(f);
    if (!measuring) return;
    std::lock_guard lock(m);
    if (!stamp) {
      ++unreadable;
      return;
    }
    samples_ms.push_back(double(stamp_delta(now, *stamp)) / 1000.0);
  };
  auto wsig = hub.watcher("bench");
  Watcher w(wo, *wsig);
  std::int64_t t0 = monotonic_us();
  w.start();
  if (!iterate_until(nullptr, [&] { return w.frames() > 0; }, 30s)) {
    std::printf("latency codec=%s: no frame within 30 s\n", a.codec.c_str());
    return 1;
  }
  double first_ms = double(monotonic_us() - t0) / 1000.0;
  pump(2s);  // past the first keyframe and the jitter buffer's settling
  measuring = true;
  double cpu0 = cpu_seconds(0);
  std::int64_t w0 = monotonic_us();
  pump(std::chrono::seconds(a.seconds));
  measuring = false;
  double cpu = (cpu_seconds(0) - cpu0) / (double(monotonic_us() - w0) / 1e6) * 100.0;
  std::lock_guard lock(m);
  std::printf(
      "latency codec=%s jitterbuffer=%ums frames=%zu unreadable=%llu p50=%.1fms p95=%.1fms max=%.1fms "
      "first_frame=%.0fms process_cpu=%.0f%%\n",
      a.codec.c_str(), a.latency, samples_ms.size(), static_cast<unsigned long long>(unreadable),
      percentile(samples_ms, 50), percentile(samples_ms, 95), percentile(samples_ms, 100), first_ms, cpu);
  return 0;
}

// ---- children ----

// Pins the calling thread, and so every thread it starts later, to one CPU.
void pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof(set), &set);
}

// Pins every thread of this process, including those GLib started before (its thread-pool
// spawner would otherwise start unpinned streaming threads).
void pin_process_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) {
    sched_setaffinity(pid_t(std::stol(entry.path().filename().string())), sizeof(set), &set);
  }
}

// Runs "media_bench child ARGS --fd 3" with child_end as its fd 3; closes child_end here.
// cpu >= 0 pins the child to that CPU.
pid_t spawn_child(const std::vector<std::string>& args, int child_end, int cpu = -1) {
  std::vector<std::string> full{"/proc/self/exe", "child"};
  full.insert(full.end(), args.begin(), args.end());
  full.push_back("--fd");
  full.push_back("3");
  std::vector<char*> argv;
  for (auto& s : full) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {  // only async-signal-safe calls until exec
    if (cpu >= 0) pin_to_cpu(cpu);
    dup2(child_end, 3);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(child_end);
  return pid;
}

int run_child(const Args& a) {
  ensure_gst_init();
  PipeLink link(a.fd, nullptr);
  bool quit = false;
  std::atomic<std::int64_t> first_frame_us{-1};
  std::vector<std::unique_ptr<p2p::media::Signaller>> sigs;
  std::vector<std::unique_ptr<Watcher>> watchers;
  link.set_on_closed([&] { quit = true; });
  link.set_on_control([&](const std::string& line) {
    if (line == "QUIT") {
      quit = true;
    } else if (line == "MARK") {
      std::string reply = "COUNTS " + std::to_string(monotonic_us());
      for (auto& w : watchers) reply += " " + std::to_string(w->frames());
      link.send_control(reply);
    }
  });
  std::int64_t start_us = monotonic_us();
  use_dtls_key_file(a.key_file);  // as `p2pstream watch` does; empty: a fresh key
  for (int i = 0; i < a.count; ++i) {
    WatchOptions wo;
    wo.latency_ms = a.latency;
    wo.decode = a.decode;
    wo.audio = true;
    if (i == 0) {
      wo.on_video_frame = [&](const RawFrame&) {
        std::int64_t expected = -1;
        first_frame_us.compare_exchange_strong(expected, monotonic_us());
      };
    }
    sigs.push_back(link.watcher_end("c" + std::to_string(i), "viewer" + std::to_string(i)));
    watchers.push_back(std::make_unique<Watcher>(wo, *sigs.back()));
    watchers.back()->start();
  }
  bool reported = false;
  iterate_until(nullptr, [&] {
    if (!reported && first_frame_us >= 0) {
      reported = true;
      link.send_control("FIRST " + std::to_string(first_frame_us.load()) + " " +
                        std::to_string(first_frame_us.load() - start_us));
    }
    return quit;
  }, 600s);
  for (auto& w : watchers) w->stop();
  if (std::getenv("BENCH_VERBOSE") != nullptr) {
    const DtlsKeyOrigin k = last_dtls_key();
    std::fprintf(stderr, "  child: DTLS key source %d in %.1f ms %s\n", int(k.source), k.ms, k.warning.c_str());
  }
  pump(200ms);  // let the END lines out
  return 0;
}

// ---- first frame ----

// Where the time goes, per run: watcher start -> the broadcaster sees the session -> ICE and
// DTLS connected (broadcaster side) -> first decoded frame in the watcher. Both processes read
// the same CLOCK_MONOTONIC.
struct FirstFrameRun {
  double from_spawn = 0, from_start = 0, to_request = 0, to_connected = 0, to_frame = 0;
};

int run_first_frame(const Args& a) {
  std::vector<FirstFrameRun> runs;
  // The CLI keeps one key for a week, so every watch but the first finds it: make it now.
  std::string key_file;
  if (a.dtls_key == "stored") {
    key_file = (std::filesystem::temp_directory_path() / ("media_bench_dtls_" + std::to_string(getpid()) + ".pem")).string();
    use_dtls_key_file(key_file);
    warm_dtls_certificate();  // this process's broadcasters make and store it
  }
  for (int r = 0; r < a.runs; ++r) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 1;
    std::string first;
    PipeLink link(sv[0], nullptr);
    link.set_on_control([&](const std::string& line) {
      if (line.rfind("FIRST", 0) == 0) first = line;
    });
    auto bsig = link.broadcaster_end();
    auto b = std::make_unique<Broadcaster>(vga(a.codec), *bsig);
    std::int64_t requested_us = -1, connected_us = -1;
    b->set_on_session([&](const std::string&, const std::string& state) {
      if (state == "requested" && requested_us < 0) requested_us = monotonic_us();
      if (state == "connected" && connected_us < 0) connected_us = monotonic_us();
    });
    b->start();
    pump(2s);  // the broadcast is already running when the watcher process starts
    std::int64_t spawn_us = monotonic_us();
    pid_t pid = spawn_child({"--count", "1", "--latency", std::to_string(a.latency), "--key-file", key_file}, sv[1]);
    iterate_until(nullptr, [&] { return !first.empty(); }, 30s);
    link.send_control("QUIT");
    pump(300ms);
    b->stop();
    int status = 0;
    waitpid(pid, &status, 0);
    if (first.empty()) {
      std::printf("first-frame run %d: no frame within 30 s\n", r);
      continue;
    }
    std::istringstream in(first);
    std::string tag;
    long long at_us = 0, since_start_us = 0;
    in >> tag >> at_us >> since_start_us;
    std::int64_t start_us = at_us - since_start_us;
    FirstFrameRun run;
    run.from_spawn = double(at_us - spawn_us) / 1000.0;
    run.from_start = double(since_start_us) / 1000.0;
    run.to_request = double(requested_us - start_us) / 1000.0;
    run.to_connected = double(connected_us - requested_us) / 1000.0;
    run.to_frame = double(at_us - connected_us) / 1000.0;
    runs.push_back(run);
    if (std::getenv("BENCH_VERBOSE") != nullptr) {
      std::printf("  run %d: start->session %.0fms, session->connected %.0fms, connected->frame %.0fms, total %.0fms\n",
                  r, run.to_request, run.to_connected, run.to_frame, run.from_start);
    }
  }
  if (!key_file.empty()) std::filesystem::remove(key_file);
  auto col = [&](double FirstFrameRun::*m) {
    std::vector<double> v;
    for (const auto& run : runs) v.push_back(run.*m);
    return v;
  };
  auto from_spawn = col(&FirstFrameRun::from_spawn), from_start = col(&FirstFrameRun::from_start);
  std::printf(
      "first-frame codec=%s jitterbuffer=%ums dtls_key=%s runs=%zu from_process_spawn: median=%.0fms min=%.0fms max=%.0fms "
      "from_watcher_start: median=%.0fms min=%.0fms max=%.0fms (medians: start->session %.0fms, "
      "session->connected %.0fms, connected->frame %.0fms)\n",
      a.codec.c_str(), a.latency, a.dtls_key.c_str(), runs.size(), percentile(from_spawn, 50), percentile(from_spawn, 0),
      percentile(from_spawn, 100), percentile(from_start, 50), percentile(from_start, 0), percentile(from_start, 100),
      percentile(col(&FirstFrameRun::to_request), 50), percentile(col(&FirstFrameRun::to_connected), 50),
      percentile(col(&FirstFrameRun::to_frame), 50));
  return 0;
}

// ---- fan-out ----

struct FanoutResult {
  int viewers = 0;
  double sender_cpu = 0, sender_cpu_idle = 0, receiver_cpu = 0;
  double sent_fps = 0;
  double mean_lost = 0, max_lost = 0, mean_fps = 0, min_fps = 0;
  bool connected = false;
};

FanoutResult fanout_once(const Args& a, int n) {
  FanoutResult r;
  r.viewers = n;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return r;
  PipeLink link(sv[0], nullptr);
  std::string counts;
  link.set_on_control([&](const std::string& line) {
    if (line.rfind("COUNTS", 0) == 0) counts = line;
  });
  auto bsig = link.broadcaster_end();
  Broadcaster b(vga(a.codec), *bsig);
  b.start();
  pump(2s);
  // Sender alone, for the baseline.
  double c0 = cpu_seconds(0);
  std::int64_t t0 = monotonic_us();
  pump(std::chrono::seconds(std::max(3, a.seconds / 2)));
  r.sender_cpu_idle = (cpu_seconds(0) - c0) / (double(monotonic_us() - t0) / 1e6) * 100.0;

  pid_t pid = spawn_child({"--count", std::to_string(n), "--decode", "0", "--latency", "50"}, sv[1],
                          a.pin ? 1 : -1);
  r.connected = iterate_until(nullptr, [&] { return b.stats().connected == unsigned(n); }, 120s);
  pump(3s);
  auto mark = [&] {
    counts.clear();
    link.send_control("MARK");
    iterate_until(nullptr, [&] { return !counts.empty(); }, 10s);
    std::vector<double> v;
    std::istringstream in(counts);
    std::string tag;
    in >> tag;
    double x;
    while (in >> x) v.push_back(x);
    return v;
  };
  // Rates, each over its own process's clock: the two windows need not line up exactly.
  std::vector<double> before = mark();
  BroadcastStats s0 = b.stats();
  c0 = cpu_seconds(0);
  double rc0 = cpu_seconds(pid);
  t0 = monotonic_us();
  pump(std::chrono::seconds(a.seconds));
  double wall = double(monotonic_us() - t0) / 1e6;
  BroadcastStats s1 = b.stats();
  std::vector<double> after = mark();
  r.sender_cpu = (cpu_seconds(0) - c0) / wall * 100.0;
  r.receiver_cpu = (cpu_seconds(pid) - rc0) / wall * 100.0;
  r.sent_fps = double(s1.frames_sent - s0.frames_sent) / std::max(1e-3, s1.elapsed_s - s0.elapsed_s);
  r.min_fps = 1e9;
  std::size_t k = std::min(before.size(), after.size());
  double child_s = k > 0 ? (after[0] - before[0]) / 1e6 : 0;
  std::size_t viewers = 0;
  for (std::size_t i = 1; i < k && child_s > 0; ++i, ++viewers) {
    double fps = (after[i] - before[i]) / child_s;
    double lost = std::max(0.0, r.sent_fps - fps) * wall;
    r.mean_lost += lost;
    r.max_lost = std::max(r.max_lost, lost);
    r.mean_fps += fps;
    r.min_fps = std::min(r.min_fps, fps);
  }
  if (viewers > 0) {
    r.mean_lost /= double(viewers);
    r.mean_fps /= double(viewers);
  } else {
    r.min_fps = 0;
  }
  link.send_control("QUIT");
  iterate_until(nullptr, [&] { return b.sessions().empty(); }, 10s);
  int status = 0;
  waitpid(pid, &status, 0);
  b.stop();
  return r;
}

int run_fanout(const Args& a) {
  // The receivers stand in for viewers on other machines: with --pin 1 (the default on 2+ CPUs)
  // the sender keeps CPU 0 and the receivers get CPU 1, so they do not take the sender's time.
  if (a.pin) pin_process_to_cpu(0);
  std::vector<FanoutResult> results;
  for (int n : a.viewers) {
    FanoutResult r = fanout_once(a, n);
    results.push_back(r);
    double offered = r.sent_fps * a.seconds;
    double loss_pct = offered > 0 ? r.mean_lost / offered * 100.0 : 100.0;
    // Served: every viewer connected, the encoder kept (nearly) the full frame rate, and the
    // viewers lost under 1% of what it sent.
    bool served = r.connected && r.sent_fps >= 0.97 * 30 && loss_pct < 1.0;
    std::printf(
        "fanout codec=%s viewers=%d connected=%s pinned=%s sender_cpu=%.1f%% (alone %.1f%%) per_viewer=%.2f%% "
        "receivers_cpu=%.0f%% sent_fps=%.1f viewer_fps mean=%.1f min=%.1f frames_lost_per_viewer mean=%.1f max=%.0f "
        "(of %.0f) loss=%.2f%% served=%s\n",
        a.codec.c_str(), n, r.connected ? "all" : "NOT-ALL", a.pin ? "yes" : "no", r.sender_cpu, r.sender_cpu_idle,
        (r.sender_cpu - r.sender_cpu_idle) / double(n), r.receiver_cpu, r.sent_fps, r.mean_fps, r.min_fps, r.mean_lost,
        r.max_lost, offered, loss_pct, served ? "yes" : "NO");
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a = parse(argc, argv);
  try {
    ensure_gst_init();
    if (a.mode == "child") return run_child(a);
    if (a.mode == "latency") return run_latency(a);
    if (a.mode == "first-frame") return run_first_frame(a);
    if (a.mode == "fanout") return run_fanout(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "media_bench: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "unknown mode %s\n", a.mode.c_str());
  return 2;
}
