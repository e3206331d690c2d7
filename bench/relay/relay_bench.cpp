// bench/relay: relay-tree figures against a real `p2pstream signal`. `run` starts one broadcaster
// and N relaying watchers as separate processes (this binary in `node` mode), reads their JSON
// lines, SIGKILLs random inner relays, and prints per-depth glass-to-glass latency (frames
// stamped before encoding with media/frame_stamp and read back after decoding), join time,
// frames lost, the broadcaster's uplink against a star, and the tree's recovery time.
//
//   relay_bench node --signal URL --stream ID --fill F [--broadcaster --max-direct D] [--relay K] [--decode]
//   relay_bench run --signal URL --stream ID --n N --k K --max-direct D [--seconds S] [--kills M]
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "media/broadcaster.hpp"
#include "media/frame_stamp.hpp"
#include "media/gst_util.hpp"
#include "media/watcher.hpp"
#include "signal_client/w3b_signaller.hpp"

using nlohmann::json;
namespace media = p2p::media;
namespace sc = p2p::signal_client;

namespace p2p::bench_relay {
namespace {

constexpr unsigned kFps = 15;
constexpr unsigned kKbps = 300;

std::int64_t wall_us() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

std::map<std::string, std::string> flags(int argc, char** argv, int from) {
  std::map<std::string, std::string> f;
  for (int i = from; i < argc; ++i) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0) continue;
    if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) f[k] = argv[++i];
    else f[k] = "1";
  }
  return f;
}

keys::Keypair seed_key(int fill) {
  keys::Seed seed;
  seed.fill(static_cast<std::uint8_t>(fill));
  return keys::Keypair::from_seed(seed);
}

void emit(const json& j) {
  std::cout << j.dump() << std::endl;
}

// ---- node: one broadcaster or watcher, reporting JSON lines ----

int node(std::map<std::string, std::string> f) {
  media::ensure_gst_init();
  ::signal(SIGPIPE, SIG_IGN);
  sc::W3bOptions so;
  so.client.url = f["--signal"];
  so.stream_id = f["--stream"];
  so.key = seed_key(std::stoi(f["--fill"]));
  const bool broadcaster = f.count("--broadcaster");
  so.role = broadcaster ? sc::W3bRole::broadcaster : sc::W3bRole::watcher;
  so.relay_slots = static_cast<std::uint32_t>(std::stoi(broadcaster ? f["--max-direct"] : f["--relay"]));
  sc::W3bSignaller sig(so);
  GMainLoop* loop = g_main_loop_new(nullptr, FALSE);
  const std::int64_t started = wall_us();

  if (broadcaster) {
    media::BroadcastOptions bo;
    bo.size = {384, 216};
    bo.fps = kFps;
    bo.bitrate_kbps = kKbps;
    bo.audio = false;
    bo.adapt_bitrate = false;
    bo.max_direct = so.relay_slots;
    bo.before_encode = [](media::RawFrame& fr) {
      media::write_stamp(fr, static_cast<std::uint64_t>(wall_us()) & media::kStampMask);
    };
    media::Broadcaster b(bo, sig);
    b.set_on_stats([](const media::BroadcastStats& s) {
      emit({{"kind", "broadcaster"}, {"watchers", s.watchers}, {"connected", s.connected}, {"sent_kbps", s.sent_kbps},
            {"frames", s.frames_sent}});
    });
    b.set_on_error([&](const std::string& m) {
      std::cerr << "broadcaster: " << m << "\n";
      g_main_loop_quit(loop);
    });
    b.start();
    emit({{"kind", "started"}});
    g_main_loop_run(loop);
    return 1;
  }

  media::WatchOptions wo;
  wo.sink = media::WatchSink::null;
  wo.audio = false;
  wo.decode = f.count("--decode") > 0;
  wo.relay_slots = so.relay_slots;
  std::mutex mu;
  std::vector<double> lat;  // ms, this second
  std::uint64_t unreadable = 0;
  wo.on_video_frame = [&](const media::RawFrame& fr) {
    auto s = media::read_stamp(fr);
    std::lock_guard<std::mutex> l(mu);
    if (!s) {
      ++unreadable;
      return;
    }
    lat.push_back(static_cast<double>(media::stamp_delta(static_cast<std::uint64_t>(wall_us()) & media::kStampMask, *s)) / 1000.0);
  };
  media::Watcher w(wo, sig);
  w.set_on_stats([&](const media::WatchStats& st) {
    json j = {{"kind", "stats"}, {"at_ms", wall_us() / 1000}, {"depth", sig.depth()}, {"parent", sig.parent()},
              {"frames", w.frames()}, {"kbps", st.bitrate_kbps}, {"children", st.children}, {"lost", st.packets_lost}};
    if (st.first_frame_ms) j["first_frame_ms"] = *st.first_frame_ms;
    std::lock_guard<std::mutex> l(mu);
    j["lat"] = lat;
    j["unreadable"] = unreadable;
    lat.clear();
    emit(j);
  });
  w.set_on_end([&](media::WatchEnd, const std::string& m) {
    std::cerr << "watcher ended: " << m << "\n";
    g_main_loop_quit(loop);
  });
  // Reported with when the frames came back: the first frame through a new parent (recovery
  // after a kill, however short the gap), or after any freeze of 300 ms or more.
  std::uint64_t last_frames = 0;
  std::int64_t last_change = 0;
  std::string last_parent;
  bool moved = false;
  media::Timer gaps(nullptr, 20, [&] {
    if (sig.parent() != last_parent) {
      moved = !last_parent.empty();
      last_parent = sig.parent();
    }
    // Frames into the tee: those still queued before our own decoder after a move came from
    // the old parent.
    std::uint64_t n = w.frames_forwarded();
    if (n == last_frames) return true;
    std::int64_t now = wall_us();
    if (last_change > 0 && (moved || now - last_change > 300'000))
      emit({{"kind", "resume"}, {"at_ms", now / 1000}, {"gap_ms", (now - last_change) / 1000}, {"moved", moved}});
    moved = false;
    last_frames = n;
    last_change = now;
    return true;
  });
  emit({{"kind", "started"}, {"at_ms", started / 1000}, {"id", sig.id()}});
  w.start();
  g_main_loop_run(loop);
  return 0;
}

// ---- run: the whole benchmark ----

struct Proc {
  pid_t pid = -1;
  std::string out;  // file of its stdout
  std::size_t read = 0;
  int fill = 0;
  std::string id;
  std::int64_t started_ms = 0;
  json last;  // last stats line
};

pid_t spawn(const std::vector<std::string>& args, const std::string& out) {
  std::vector<char*> a;
  for (auto& s : args) a.push_back(const_cast<char*>(s.c_str()));
  a.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, (out + ".err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  if (posix_spawn(&pid, a[0], &fa, nullptr, a.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

std::vector<json> new_lines(Proc& p) {
  std::ifstream in(p.out);
  in.seekg(static_cast<std::streamoff>(p.read));
  std::vector<json> v;
  std::string line;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // a partial line: read it next time
    p.read += line.size() + 1;
    auto j = json::parse(line, nullptr, false);
    if (!j.is_discarded()) v.push_back(j);
  }
  return v;
}

double pct(std::vector<double> v, double q) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

int run(std::map<std::string, std::string> f, const std::string& self) {
  const int n = std::stoi(f["--n"]), k = std::stoi(f["--k"]), direct = std::stoi(f["--max-direct"]);
  const int seconds = f.count("--seconds") ? std::stoi(f["--seconds"]) : 20;
  const int kills = f.count("--kills") ? std::stoi(f["--kills"]) : 10;
  const std::string dir = f.count("--dir") ? f["--dir"] : "/tmp";
  std::vector<std::string> base = {self, "node", "--signal", f["--signal"], "--stream", f["--stream"]};

  Proc b;
  b.out = dir + "/broadcaster.jsonl";
  auto bargs = base;
  bargs.insert(bargs.end(), {"--fill", "17", "--broadcaster", "--max-direct", std::to_string(direct)});
  b.pid = spawn(bargs, b.out);
  std::this_thread::sleep_for(std::chrono::seconds(2));

  std::vector<Proc> ws(static_cast<std::size_t>(n));
  auto start_watcher = [&](std::size_t i) {
    Proc& p = ws[i];
    p.fill = 0x80 + static_cast<int>(i);
    p.out = dir + "/w" + std::to_string(i) + ".jsonl";
    p.read = 0;
    p.last = json();
    auto a = base;
    a.insert(a.end(), {"--fill", std::to_string(p.fill), "--relay", std::to_string(k)});
    if (i % 3 == 0) a.push_back("--decode");  // a third decode, to read the stamps; the rest only forward
    p.started_ms = wall_us() / 1000;
    p.pid = spawn(a, p.out);
  };
  for (std::size_t i = 0; i < ws.size(); ++i) {
    start_watcher(i);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }

  std::map<int, std::vector<double>> lat_by_depth, join_by_depth;
  std::map<int, long long> frames_by_depth, expected_by_depth;
  std::map<int, int> count_by_depth;
  std::vector<double> direct_kbps, all_kbps;
  std::map<std::size_t, long long> window_start_frames;
  std::map<std::size_t, std::int64_t> window_start_ms;
  std::map<std::size_t, std::vector<json>> resumes;
  unsigned long long unreadable = 0;

  auto poll_all = [&](bool measure) {
    for (std::size_t i = 0; i < ws.size(); ++i) {
      for (auto& j : new_lines(ws[i])) {
        if (j["kind"] == "started" && j.contains("id")) ws[i].id = j["id"];
        if (j["kind"] == "resume") resumes[i].push_back(j);
        if (j["kind"] != "stats") continue;
        ws[i].last = j;
        if (!measure) continue;
        int d = j["depth"];
        for (double l : j["lat"]) lat_by_depth[d].push_back(l);
        unreadable += j["unreadable"].get<unsigned long long>();
        if (d == 1) direct_kbps.push_back(j["kbps"]);
        all_kbps.push_back(j["kbps"]);
      }
    }
  };
  // Settle: every watcher placed and receiving.
  const auto settle_until = std::chrono::steady_clock::now() + std::chrono::seconds(30 + n);
  for (;;) {
    poll_all(false);
    int ready = 0;
    for (auto& p : ws)
      if (p.last.is_object() && p.last["frames"].get<long long>() > 0) ++ready;
    if (ready == n || std::chrono::steady_clock::now() > settle_until) {
      std::printf("N=%d K=%d max-direct=%d: %d of %d watchers receiving after settling\n", n, k, direct, ready, n);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  for (std::size_t i = 0; i < ws.size(); ++i) {
    const json& j = ws[i].last;
    if (!j.is_object()) continue;
    int d = j["depth"];
    if (j.contains("first_frame_ms")) join_by_depth[d].push_back(j["first_frame_ms"]);
    window_start_frames[i] = j["frames"];
    window_start_ms[i] = j["at_ms"];
  }
  // Steady state: latency, loss and uplink.
  for (int s = 0; s < seconds * 5; ++s) {
    poll_all(true);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  poll_all(true);
  for (std::size_t i = 0; i < ws.size(); ++i) {
    const json& j = ws[i].last;
    if (!j.is_object() || !window_start_ms.count(i)) continue;
    int d = j["depth"];
    ++count_by_depth[d];
    frames_by_depth[d] += j["frames"].get<long long>() - window_start_frames[i];
    expected_by_depth[d] += (j["at_ms"].get<long long>() - window_start_ms[i]) * kFps / 1000;
  }

  std::printf("%-6s %8s %10s %10s %10s %12s\n", "depth", "watchers", "g2g p50", "g2g p95", "join p50", "frames lost");
  for (auto& [d, c] : count_by_depth) {
    long long lost = std::max(0LL, expected_by_depth[d] - frames_by_depth[d]);
    std::printf("%-6d %8d %8.1fms %8.1fms %8.0fms %6lld (%.2f%%)\n", d, c, pct(lat_by_depth[d], 0.5), pct(lat_by_depth[d], 0.95),
                pct(join_by_depth[d], 0.5), lost, expected_by_depth[d] ? 100.0 * lost / expected_by_depth[d] : 0.0);
  }
  std::printf("stamps unreadable: %llu\n", unreadable);
  if (lat_by_depth.count(1)) {
    const double base1 = pct(lat_by_depth[1], 0.5);
    for (auto& [d, v] : lat_by_depth)
      if (d > 1) std::printf("added latency per hop, depth %d: p50 %.1f ms\n", d, (pct(v, 0.5) - base1) / (d - 1));
  }
  double mean_all = 0;
  for (double x : all_kbps) mean_all += x;
  mean_all = all_kbps.empty() ? 0 : mean_all / static_cast<double>(all_kbps.size());
  double direct_sum = 0;
  for (double x : direct_kbps) direct_sum += x;
  const double samples_per_watcher = direct_kbps.empty() ? 1 : static_cast<double>(all_kbps.size()) / n;
  const double uplink = direct_sum / samples_per_watcher;
  std::printf("broadcaster uplink: %.0f kbit/s (what its direct children receive); a star would send N x %.0f = %.0f kbit/s; "
              "bound max-direct x bitrate = %.0f kbit/s\n",
              uplink, mean_all, n * mean_all, direct * mean_all);

  // Recovery: SIGKILL a random inner relay, time until each of its children has frames again.
  std::mt19937 rng(42);
  std::vector<double> recovery;
  int failed = 0;
  for (int kill = 0; kill < kills; ++kill) {
    poll_all(false);
    std::vector<std::size_t> inner;
    for (std::size_t i = 0; i < ws.size(); ++i)
      if (ws[i].last.is_object() && ws[i].last["children"].get<int>() > 0 && ws[i].pid > 0) inner.push_back(i);
    if (inner.empty()) {
      std::printf("kill %d: no inner relay to kill\n", kill + 1);
      break;
    }
    const std::size_t v = inner[rng() % inner.size()];
    std::vector<std::size_t> kids;
    for (std::size_t i = 0; i < ws.size(); ++i)
      if (ws[i].last.is_object() && ws[i].last["parent"] == ws[v].id) kids.push_back(i);
    for (auto i : kids) resumes[i].clear();
    const std::int64_t killed_ms = wall_us() / 1000;
    ::kill(ws[v].pid, SIGKILL);
    ::waitpid(ws[v].pid, nullptr, 0);
    double worst = -1;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < until) {
      poll_all(false);
      bool all = true;
      worst = -1;
      for (auto i : kids) {
        double got = -1;
        for (const auto& r : resumes[i])
          if (r["at_ms"].get<std::int64_t>() > killed_ms) got = static_cast<double>(r["at_ms"].get<std::int64_t>() - killed_ms) / 1000.0;
        if (got < 0) all = false;
        worst = std::max(worst, got);
      }
      if (all) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    bool ok = true;
    for (auto i : kids) {
      bool got = false;
      for (const auto& r : resumes[i]) got = got || r["at_ms"].get<std::int64_t>() > killed_ms;
      ok = ok && got;
    }
    if (ok && !kids.empty()) recovery.push_back(worst);
    else ++failed;
    std::printf("kill %d: depth %d relay with %zu children: %s\n", kill + 1, ws[v].last["depth"].get<int>(), kids.size(),
                ok ? (std::to_string(worst) + " s").c_str() : "not all children recovered within 10 s");
    start_watcher(v);  // keep N: the account joins again
    std::this_thread::sleep_for(std::chrono::seconds(3));
  }
  std::printf("recovery over %zu kills: p50 %.2f s, p95 %.2f s (%d not recovered in 10 s)\n", recovery.size(),
              pct(recovery, 0.5), pct(recovery, 0.95), failed);

  for (auto& p : ws)
    if (p.pid > 0) ::kill(p.pid, SIGKILL);
  ::kill(b.pid, SIGTERM);
  for (auto& p : ws)
    if (p.pid > 0) ::waitpid(p.pid, nullptr, 0);
  ::waitpid(b.pid, nullptr, 0);
  return 0;
}

}  // namespace
}  // namespace p2p::bench_relay

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: relay_bench node|run --signal URL --stream ID ...\n");
    return 2;
  }
  std::string mode = argv[1];
  auto f = p2p::bench_relay::flags(argc, argv, 2);
  try {
    if (mode == "node") return p2p::bench_relay::node(f);
    if (mode == "run") return p2p::bench_relay::run(f, argv[0]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "relay_bench: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "relay_bench: unknown mode %s\n", mode.c_str());
  return 2;
}
