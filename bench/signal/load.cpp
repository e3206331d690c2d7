// signal_load: the load generator of the signalling benchmark. One thread, epoll, raw RFC 6455
// WebSocket clients speaking Engine.IO v4 / Socket.IO v5 text, so that one process can hold
// 10,000+ connections (socket.io-client in one node process caps out first).
//
// Connections come in groups: one broadcaster and K watchers per stream. Phases:
//   connect   all N sockets: WebSocket handshake, Engine.IO open, Socket.IO CONNECT
//   join      broadcasters `broadcast`, then watchers `watch` (signed over the challenge with
//             --auth challenge); each admitted watcher gets an offer, answers, and both sides
//             send --candidates candidates: the signalling of one real session
//   peak      closed loop: each watcher keeps --window candidates in flight to its broadcaster,
//             which echoes each back; relayed messages per second is the server's peak
//   latency   open loop at --latency-fraction of the peak rate (or --latency-rate), in the peak's
//             mix: every other message watcher -> broadcaster, the rest back (--latency-mix
//             one-way: all watcher -> broadcaster, a costlier mix than the peak's), sent
//             on a fixed schedule (every --pace-us) whatever the replies do; one-way relay
//             latency from the sender's send() to the kernel's receive timestamp on the receiving
//             socket (SO_TIMESTAMPING), so the generator's own queueing is not counted; the
//             user-space receive time is reported beside it, with the sender's lag behind
//             its schedule, to show when the generator rather than the server was late; between
//             sends it sleeps on a timer, not in epoll_wait (see nap_ns; --latency-wait epoll);
//             with --skip-late-us, a message already that late (the generator's CPU was taken
//             away) is skipped and counted, not sent in a catch-up burst; the server's CPU time
//             is read every millisecond, to find where the host kept it from queued work
//             (interference.hpp)
// Results are one JSON object on stdout. Only loopback is used.
//
//   signal_load --port P --conns N --watchers K --streams FILE [--auth challenge|none] [--trace FILE] ...
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <linux/net_tstamp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <sstream>
#include <iterator>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "interference.hpp"
#include "proc_stat.hpp"

namespace {

using Clock = std::chrono::steady_clock;
std::int64_t now_ns() { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count(); }
// Relay stamps use CLOCK_REALTIME: the kernel's receive timestamps are on that clock.
std::int64_t wall_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000LL + ts.tv_nsec;
}

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  int conns = 100;
  int watchers = 9;
  std::string streams_file;
  bool auth = true;
  int sdp_bytes = 2500;
  int candidates = 4;
  double peak_s = 8;
  int window = 2;
  double latency_s = 8;
  double latency_fraction = 0.5;
  double latency_rate = 0;  // msg/s for the latency phase; 0: latency_fraction of the measured peak
  bool latency_two_way = true;  // latency phase: every other message broadcaster -> watcher, as in the peak
  int pace_us = 200;
  bool latency_wait_epoll = false;  // latency phase: block in epoll_wait between sends (see nap_ns)
  // Latency phase: a message more than this late against the schedule is skipped (counted), so
  // a stall of the generator's own CPU does not come out as a burst above the nominal rate.
  // 0 (the default): send every one, however late (catch up at full speed).
  int latency_skip_late_us = 0;
  int server_pid = 0;
  int connect_concurrency = 200;
  int join_concurrency = 200;
  double timeout_s = 180;
  std::string trace_file;  // latency phase: one "send_us latency_us" line per message (send_us: wall clock)
};

std::string hex(const unsigned char* p, std::size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s = "0x";
  for (std::size_t i = 0; i < n; ++i) {
    s += d[p[i] >> 4];
    s += d[p[i] & 15];
  }
  return s;
}

struct Key {
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  unsigned char sk[crypto_sign_SECRETKEYBYTES];
  std::string id;
};

Key key_from_seed(const unsigned char* seed) {
  Key k;
  crypto_sign_seed_keypair(k.pk, k.sk, seed);
  k.id = hex(k.pk, sizeof k.pk);
  return k;
}

std::string sign(const Key& k, const std::string& text) {
  unsigned char sig[crypto_sign_BYTES];
  crypto_sign_detached(sig, nullptr, reinterpret_cast<const unsigned char*>(text.data()), text.size(), k.sk);
  return hex(sig, sizeof sig);
}

// The fields of /proc/PID/stat after the command name (so field N of proc(5) is [N - 3]).
std::vector<std::string> stat_fields(int pid) {
  std::vector<std::string> f;
  if (pid <= 0) return f;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = all.rfind(')');
  if (close == std::string::npos || close + 2 > all.size()) return f;
  std::istringstream words(all.substr(close + 2));
  for (std::string w; words >> w;) f.push_back(w);
  return f;
}

// The CPU a process last ran on (field 39 of /proc/PID/stat), or -1.
int last_cpu(int pid) {
  auto f = stat_fields(pid);
  return f.size() < 37 ? -1 : std::atoi(f[36].c_str());
}

// Seconds the process's threads were runnable but waited for a CPU inside this machine (the
// second field of /proc/PID/schedstat): other work on the server's CPU, not the hypervisor.
double run_wait_s(int pid) {
  if (pid <= 0) return -1;
  std::ifstream in("/proc/" + std::to_string(pid) + "/schedstat");
  long long on = 0, wait = -1;
  in >> on >> wait;
  return wait < 0 ? -1 : static_cast<double>(wait) / 1e9;
}

// The server's CPU time (first field of /proc/PID/schedstat, in ns), read every millisecond of the
// latency phase. With paravirtual steal accounting it excludes time the hypervisor took, so a
// server with work queued that did not get its millisecond shows it here.
class ServerCpu {
 public:
  ~ServerCpu() {
    if (fd_ >= 0) ::close(fd_);
  }
  void open(int pid) {
    if (pid > 0) fd_ = ::open(("/proc/" + std::to_string(pid) + "/schedstat").c_str(), O_RDONLY | O_CLOEXEC);
    samples_.clear();
    samples_.reserve(16384);
  }
  void sample(std::int64_t wall) {
    if (fd_ < 0 || (!samples_.empty() && wall - samples_.back().t_ns < 1'000'000)) return;
    char buf[128];
    const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
    // A read that took long (this process lost its CPU meanwhile) would pin the server's CPU
    // time to the wrong moment: drop it.
    if (n <= 0 || wall_ns() - wall > 50'000) return;
    buf[n] = 0;
    samples_.push_back({wall, std::strtoll(buf, nullptr, 10)});
  }
  const std::vector<p2p::bench::CpuSample>& samples() const { return samples_; }

 private:
  int fd_ = -1;
  std::vector<p2p::bench::CpuSample> samples_;
};

long rss_kib(int pid) {
  if (pid <= 0) return -1;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

// CPU seconds (user + system) the process has used, from /proc/PID/stat.
double cpu_s(int pid) {
  auto f = stat_fields(pid);
  if (f.size() < 13) return -1;
  // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the command name.
  return static_cast<double>(std::stoll(f[11]) + std::stoll(f[12])) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// The string value after `"key":"` in text, or empty.
std::string_view field(std::string_view text, std::string_view key) {
  std::string pat = "\"" + std::string(key) + "\":\"";
  auto i = text.find(pat);
  if (i == std::string_view::npos) return {};
  i += pat.size();
  auto j = text.find('"', i);
  return j == std::string_view::npos ? std::string_view() : text.substr(i, j - i);
}

enum class Stage { connecting, upgrading, open, connected, closed };

struct Conn {
  int fd = -1;
  int index = 0;
  int group = 0;
  int watcher = -1;  // -1: the group's broadcaster
  Stage stage = Stage::connecting;
  std::string in;
  std::string out;
  bool writing = false;
  std::string nonce;
  bool join_wanted = false;  // waiting for a nonce
  bool joined = false;
  int exchange_left = 0;  // offer/answer/candidates still to arrive here
  std::int64_t join_sent_ns = 0;
  std::string frag;  // a fragmented message being assembled
  std::int64_t rx_kernel_ns = 0;  // kernel receive timestamp of the latest data read (wall clock)
  std::int64_t rx_user_ns = 0;    // when this process read it (wall clock)
};

class Load {
 public:
  explicit Load(Options o) : o_(std::move(o)) {
    unsigned char seed[32];
    std::memset(seed, 0x11, sizeof seed);
    broadcaster_ = key_from_seed(seed);
    for (int j = 0; j < o_.watchers; ++j) {
      std::memset(seed, 0x5a, sizeof seed);
      seed[0] = static_cast<unsigned char>(j & 0xff);
      seed[1] = static_cast<unsigned char>(j >> 8);
      watcher_keys_.push_back(key_from_seed(seed));
      watcher_by_id_[watcher_keys_.back().id] = j;
    }
    std::ifstream in(o_.streams_file);
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) streams_.push_back(line);
    const int group = o_.watchers + 1;
    groups_ = std::min<int>(o_.conns / group, static_cast<int>(streams_.size()));
    if (groups_ == 0) throw std::runtime_error("no stream ids, or --conns smaller than one group");
    conns_.resize(static_cast<std::size_t>(groups_ * group));
    for (int i = 0; i < static_cast<int>(conns_.size()); ++i) {
      conns_[i].index = i;
      conns_[i].group = i / group;
      conns_[i].watcher = i % group - 1;
    }
    sdp_ = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n";
    while (static_cast<int>(sdp_.size()) < o_.sdp_bytes) sdp_ += "a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host\r\n";
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    std::memset(&addr_, 0, sizeof addr_);
    addr_.sin_family = AF_INET;
    addr_.sin_port = htons(static_cast<std::uint16_t>(o_.port));
    inet_pton(AF_INET, o_.host.c_str(), &addr_.sin_addr);
  }

  void run() {
    const long rss_idle = rss_kib(o_.server_pid);
    // ---- connect ----
    auto t0 = now_ns();
    std::size_t next = 0;
    while (connected_ + failed_ < static_cast<int>(conns_.size())) {
      while (next < conns_.size() && pending_connects_ < o_.connect_concurrency) start_connect(conns_[next++]);
      poll(5);
      check_timeout(t0, "connect");
    }
    const double connect_s = (now_ns() - t0) / 1e9;
    std::fprintf(stderr, "signal_load: %d connections in %.1f s; joining\n", connected_, connect_s);
    const long rss_connected = rss_kib(o_.server_pid);

    // ---- join and exchange ----
    t0 = now_ns();
    for (auto& c : conns_)
      if (c.watcher < 0 && c.stage == Stage::connected) join_queue_.push_back(c.index);
    int broadcasters = static_cast<int>(join_queue_.size());
    while (live_ + join_refused_ < broadcasters) {
      pump_joins();
      poll(5);
      check_timeout(t0, "broadcast");
    }
    const double broadcast_s = (now_ns() - t0) / 1e9;
    const auto t_watch = now_ns();
    int watchers = 0;
    for (auto& c : conns_)
      if (c.watcher >= 0 && c.stage == Stage::connected && conns_[static_cast<std::size_t>(c.group * (o_.watchers + 1))].joined) {
        join_queue_.push_back(c.index);
        c.exchange_left = 2 + 2 * o_.candidates;  // offer, answer and the candidates both ways
        ++watchers;
      }
    const int refused_broadcasts = join_refused_;
    while (admitted_ + (join_refused_ - refused_broadcasts) < watchers || exchanges_done_ < admitted_) {
      pump_joins();
      poll(5);
      check_timeout(t0, "watch and exchange");
    }
    const double watch_s = (now_ns() - t_watch) / 1e9;
    const double exchange_s = (last_exchange_ns_ - t_watch) / 1e9;
    const long rss_joined = rss_kib(o_.server_pid);
    const std::uint64_t exchange_relayed = received_relays_;

    // ---- peak throughput (closed loop) ----
    std::fprintf(stderr, "signal_load: %d streams and %d watchers joined; peak phase (%.0f s)\n", live_, admitted_, o_.peak_s);
    phase_ = 'p';
    received_relays_ = 0;
    for (auto& c : conns_)
      if (c.watcher >= 0 && c.joined)
        for (int k = 0; k < o_.window; ++k) send_candidate(c, broadcaster_conn(c), 'p', wall_ns());
    const auto warm = now_ns() + 1'000'000'000LL;
    while (now_ns() < warm) poll(1);
    std::uint64_t base = received_relays_;
    const double cpu0 = cpu_s(o_.server_pid), self0 = cpu_s(static_cast<int>(::getpid()));
    auto tp = now_ns();
    while (now_ns() - tp < static_cast<std::int64_t>(o_.peak_s * 1e9)) poll(1);
    const double peak_dur = (now_ns() - tp) / 1e9;
    const double peak = static_cast<double>(received_relays_ - base) / peak_dur;
    const double server_cpu = (cpu_s(o_.server_pid) - cpu0) / peak_dur;
    const double load_cpu = (cpu_s(static_cast<int>(::getpid())) - self0) / peak_dur;
    const long rss_peak = rss_kib(o_.server_pid);
    phase_ = 'd';  // drain: echoes stop
    auto drain = now_ns() + 1'500'000'000LL;
    while (now_ns() < drain) poll(5);

    // ---- latency at a fraction of the peak (open loop) ----
    // Message k is due at tl + k / rate, whatever the replies do: a slow server cannot slow the
    // sender down and hide its own delay (coordinated omission). Each message is stamped when it
    // is sent; how late the sender was against the schedule is reported apart (sender_lag).
    phase_ = 'l';
    std::vector<int> senders;
    for (auto& c : conns_)
      if (c.watcher >= 0 && c.joined) senders.push_back(c.index);
    // A fixed rate compares builds at the same load: the closed-loop peak moves with how well
    // the server batches, and so does a rate taken from it.
    const double rate = o_.latency_rate > 0 ? o_.latency_rate : peak * o_.latency_fraction;
    const auto total = static_cast<std::uint64_t>(rate * o_.latency_s);
    user_latencies_.clear();
    relays_.clear();
    relays_.reserve(total + 16);
    user_latencies_.reserve(total + 16);
    std::vector<std::int64_t> lags;
    lags.reserve(total + 16);
    const double interval_ns = rate > 0 ? 1e9 / rate : 1e9;
    const std::int64_t pace_ns = static_cast<std::int64_t>(o_.pace_us) * 1000;
    std::uint64_t sent = 0, skipped = 0;
    const std::int64_t skip_late_ns = static_cast<std::int64_t>(o_.latency_skip_late_us) * 1000;
    std::fprintf(stderr, "signal_load: peak %.0f relayed/s; latency phase at %.0f msg/s (%.0f s)\n", peak, rate, o_.latency_s);
    const double lcpu0 = cpu_s(o_.server_pid), lself0 = cpu_s(static_cast<int>(::getpid())), steal0 = p2p::bench::steal_s("cpu");
    const int server_cpu_no = last_cpu(o_.server_pid);
    const double server_steal0 = p2p::bench::cpu_steal_s(server_cpu_no), wait0 = run_wait_s(o_.server_pid);
    server_cpu_.open(o_.server_pid);
    const auto tl = now_ns();
    server_cpu_.sample(wall_ns());
    auto due_at = [&](std::uint64_t k) { return tl + static_cast<std::int64_t>(static_cast<double>(k) * interval_ns); };
    while (sent < total && !senders.empty()) {
      for (auto now = now_ns(); sent < total && due_at(sent) <= now; ++sent) {
        lags.push_back(now - due_at(sent));
        // Ten thousand real clients do not stall together and then all send at once; one
        // generator whose CPU the host took away would, and the server would be measured on a
        // burst far above the load asked for. Late sends are dropped from the schedule instead.
        if (skip_late_ns > 0 && now - due_at(sent) > skip_late_ns) {
          ++skipped;
          continue;
        }
        if (o_.latency_two_way) {  // the peak's mix: watcher -> broadcaster, then the way back
          Conn& w = conns_[static_cast<std::size_t>(senders[(sent / 2) % senders.size()])];
          if (sent % 2 == 0) send_candidate(w, broadcaster_conn(w), 'l', wall_ns());
          else send_candidate(broadcaster_conn(w), w, 'l', wall_ns());
          continue;
        }
        Conn& c = conns_[static_cast<std::size_t>(senders[sent % senders.size()])];
        send_candidate(c, broadcaster_conn(c), 'l', wall_ns());
      }
      flush_all();
      // Sleep until the next message is due, but wake at least every pace_ns: waking for each
      // message would cost the generator more CPU than the messages themselves.
      const std::int64_t wait = std::max(pace_ns, due_at(sent) - now_ns());
      if (o_.latency_wait_epoll) poll_ns(wait);
      else nap_ns(wait);
      server_cpu_.sample(wall_ns());
    }
    const double lat_dur = std::max((now_ns() - tl) / 1e9, 1e-9);
    const double lat_server_cpu = (cpu_s(o_.server_pid) - lcpu0) / lat_dur;
    const double lat_load_cpu = (cpu_s(static_cast<int>(::getpid())) - lself0) / lat_dur;
    const double lat_steal = (p2p::bench::steal_s("cpu") - steal0) / lat_dur / static_cast<double>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
    const double lat_server_steal = server_cpu_no < 0 ? -1 : (p2p::bench::cpu_steal_s(server_cpu_no) - server_steal0) / lat_dur;
    const double lat_server_wait = wait0 < 0 ? -1 : (run_wait_s(o_.server_pid) - wait0) / lat_dur;
    auto settle = now_ns() + 1'000'000'000LL;
    while (now_ns() < settle && relays_.size() < sent - skipped) poll(5);
    std::vector<std::int64_t> latencies;
    latencies.reserve(relays_.size());
    for (const auto& m : relays_) latencies.push_back(m.received_ns - m.sent_ns);
    auto pct = [](std::vector<std::int64_t>& v, double p) -> double {
      if (v.empty()) return -1;
      std::sort(v.begin(), v.end());
      return static_cast<double>(v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))]) / 1e6;
    };
    const double p50 = pct(latencies, 0.5), p99 = pct(latencies, 0.99), p999 = pct(latencies, 0.999);
    const double lmax = latencies.empty() ? -1.0 : static_cast<double>(latencies.back()) / 1e6;
    const double up50 = pct(user_latencies_, 0.5), up99 = pct(user_latencies_, 0.99);
    const double lag99 = pct(lags, 0.99);
    const double lagmax = lags.empty() ? -1.0 : static_cast<double>(lags.back()) / 1e6;
    const p2p::bench::Interference host = p2p::bench::find_interference(relays_, server_cpu_.samples());
    int open = 0;
    for (const auto& c : conns_) open += c.stage == Stage::connected;
    write_trace();

    std::printf(
        "{\"connections_attempted\":%zu,\"connections_held\":%d,\"connect_failures\":%d,\"server_closes\":%d,"
        "\"connect_s\":%.3f,\"connects_per_s\":%.1f,"
        "\"streams\":%d,\"watchers\":%d,\"broadcast_s\":%.3f,\"watch_s\":%.3f,\"joins_per_s\":%.1f,"
        "\"join_refusals\":%d,\"errors\":%d,\"exchange_s\":%.3f,\"exchange_relayed\":%llu,"
        "\"peak_relayed_per_s\":%.1f,\"peak_server_cpu\":%.2f,\"peak_loadgen_cpu\":%.2f,\"latency_rate_per_s\":%.1f,\"latency_sent\":%llu,\"latency_skipped\":%llu,\"latency_received\":%zu,"
        "\"latency_p50_ms\":%.3f,\"latency_p99_ms\":%.3f,\"latency_p999_ms\":%.3f,\"latency_max_ms\":%.3f,"
        "\"latency_user_p50_ms\":%.3f,\"latency_user_p99_ms\":%.3f,\"sender_lag_p99_ms\":%.3f,\"sender_lag_max_ms\":%.3f,"
        "\"latency_server_cpu\":%.2f,\"latency_loadgen_cpu\":%.2f,\"latency_steal\":%.3f,\"latency_server_steal\":%.3f,\"latency_server_wait\":%.4f,"
        "\"latency_windows\":%d,\"latency_busy_windows\":%d,\"latency_host_windows\":%d,\"latency_withheld_ms\":%.1f,\"latency_slowed_ms\":%.1f,"
        "\"latency_cost_us\":%.2f,\"latency_forced_late_pct\":%.3f,"
        "\"rss_idle_kib\":%ld,\"rss_connected_kib\":%ld,\"rss_joined_kib\":%ld,\"rss_peak_kib\":%ld}\n",
        conns_.size(), open, failed_, server_closes_, connect_s, connected_ / std::max(connect_s, 1e-9), live_, admitted_,
        broadcast_s, watch_s, (live_ + admitted_) / std::max(broadcast_s + watch_s, 1e-9), join_refused_, errors_,
        exchange_s, static_cast<unsigned long long>(exchange_relayed), peak, server_cpu, load_cpu, rate, static_cast<unsigned long long>(sent - skipped),
        static_cast<unsigned long long>(skipped), latencies.size(), p50, p99, p999, lmax, up50, up99, lag99, lagmax, lat_server_cpu, lat_load_cpu, lat_steal, lat_server_steal, lat_server_wait,
        host.windows, host.busy_windows, host.host_windows, host.withheld_ms, host.slowed_ms, host.median_cost_us, host.forced_late_pct, rss_idle,
        rss_connected, rss_joined, rss_peak);
  }

 private:
  Conn& broadcaster_conn(const Conn& c) { return conns_[static_cast<std::size_t>(c.group * (o_.watchers + 1))]; }
  Conn& watcher_conn(int group, int j) { return conns_[static_cast<std::size_t>(group * (o_.watchers + 1) + 1 + j)]; }
  const std::string& id_of(const Conn& c) const {
    return c.watcher < 0 ? broadcaster_.id : watcher_keys_[static_cast<std::size_t>(c.watcher)].id;
  }
  const std::string& stream_of(const Conn& c) const { return streams_[static_cast<std::size_t>(c.group)]; }

  // Per-message latencies in send order, to tell periodic stalls from steady queueing.
  void write_trace() {
    if (o_.trace_file.empty() || relays_.empty()) return;
    std::vector<p2p::bench::Relay> by_send = relays_;
    std::sort(by_send.begin(), by_send.end(), [](const auto& a, const auto& b) { return a.sent_ns < b.sent_ns; });
    std::FILE* f = std::fopen(o_.trace_file.c_str(), "w");
    if (!f) return;
    // The offset lines the trace up with tools on CLOCK_MONOTONIC (perf record -k mono).
    timespec mono{};
    ::clock_gettime(CLOCK_MONOTONIC, &mono);
    const std::int64_t mono_ns = static_cast<std::int64_t>(mono.tv_sec) * 1'000'000'000LL + mono.tv_nsec;
    std::fprintf(f, "# realtime_minus_monotonic_us %lld\n", static_cast<long long>((wall_ns() - mono_ns) / 1000));
    for (const auto& m : by_send)
      std::fprintf(f, "%lld %lld\n", static_cast<long long>(m.sent_ns / 1000), static_cast<long long>((m.received_ns - m.sent_ns) / 1000));
    for (const auto& c : server_cpu_.samples())
      std::fprintf(f, "# cpu %lld %lld\n", static_cast<long long>(c.t_ns / 1000), static_cast<long long>(c.run_ns));
    std::fclose(f);
  }

  void check_timeout(std::int64_t since, const char* what) {
    if (now_ns() - since > static_cast<std::int64_t>(o_.timeout_s * 1e9))
      throw std::runtime_error(std::string("timed out in the ") + what + " phase (connected " + std::to_string(connected_) +
                               ", live " + std::to_string(live_) + ", admitted " + std::to_string(admitted_) +
                               ", exchanges " + std::to_string(exchanges_done_) + ", errors " + std::to_string(errors_) + ")");
  }

  // ---- sockets ----

  void start_connect(Conn& c) {
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) return fail(c, "socket");
    int one = 1;
    ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // Receive timestamps from the kernel: latency ends when the data reached this socket, not
    // when this one thread got round to reading it.
    int ts = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE;
    ::setsockopt(c.fd, SOL_SOCKET, SO_TIMESTAMPING, &ts, sizeof ts);
    int rc = ::connect(c.fd, reinterpret_cast<sockaddr*>(&addr_), sizeof addr_);
    if (rc != 0 && errno != EINPROGRESS) return fail(c, "connect");
    ++pending_connects_;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u32 = static_cast<std::uint32_t>(c.index);
    ::epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev);
    c.writing = true;
    c.out = "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: " + o_.host + ":" + std::to_string(o_.port) +
            "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n";
    c.stage = Stage::upgrading;
  }

  void fail(Conn& c, const char* what) {
    if (c.stage == Stage::connecting || c.stage == Stage::upgrading || c.stage == Stage::open) {
      ++failed_;
      if (pending_connects_ > 0 && c.stage != Stage::connecting) --pending_connects_;
      if (failed_ <= 3) std::fprintf(stderr, "signal_load: connection %d failed (%s: %s)\n", c.index, what, std::strerror(errno));
    } else if (c.stage == Stage::connected) {
      ++server_closes_;
      if (server_closes_ <= 3) std::fprintf(stderr, "signal_load: connection %d closed (%s)\n", c.index, what);
    }
    if (c.fd >= 0) ::close(c.fd);
    c.fd = -1;
    c.stage = Stage::closed;
  }

  void want_write(Conn& c, bool on) {
    if (c.writing == on || c.fd < 0) return;
    c.writing = on;
    epoll_event ev{};
    ev.events = EPOLLIN | (on ? EPOLLOUT : 0u);
    ev.data.u32 = static_cast<std::uint32_t>(c.index);
    ::epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
  }

  void flush(Conn& c) {
    while (!c.out.empty() && c.fd >= 0) {
      ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN) break;
        return fail(c, "write");
      }
      c.out.erase(0, static_cast<std::size_t>(n));
    }
    want_write(c, !c.out.empty());
  }

  void flush_all() {
    for (int i : dirty_) flush(conns_[static_cast<std::size_t>(i)]);
    dirty_.clear();
  }

  // A masked client text frame (RFC 6455 5.3).
  void send_text(Conn& c, std::string_view payload) {
    if (c.fd < 0) return;
    std::string& o = c.out;
    const bool was_empty = o.empty();
    o += static_cast<char>(0x81);
    const std::size_t n = payload.size();
    if (n < 126) {
      o += static_cast<char>(0x80 | n);
    } else if (n < 65536) {
      o += static_cast<char>(0x80 | 126);
      o += static_cast<char>(n >> 8);
      o += static_cast<char>(n & 0xff);
    } else {
      o += static_cast<char>(0x80 | 127);
      for (int s = 56; s >= 0; s -= 8) o += static_cast<char>((static_cast<std::uint64_t>(n) >> s) & 0xff);
    }
    rng_ = rng_ * 6364136223846793005ULL + 1442695040888963407ULL;
    unsigned char mask[4];
    std::memcpy(mask, &rng_, 4);
    o.append(reinterpret_cast<const char*>(mask), 4);
    const std::size_t at = o.size();
    o.append(payload);
    for (std::size_t i = 0; i < n; ++i) o[at + i] = static_cast<char>(o[at + i] ^ mask[i & 3]);
    if (was_empty) dirty_.push_back(c.index);
  }

  void poll(int timeout_ms) { poll_ns(static_cast<std::int64_t>(timeout_ms) * 1'000'000); }

  // Sleeps on a timer, then takes what arrived meanwhile without waiting on the sockets. On
  // loopback the server's send() runs the receiver's wake-up itself: a generator blocked in
  // epoll_wait makes every first reply after a sleep cost the server an inter-processor
  // interrupt to an idle CPU (on this VM ~14% of the server's CPU at the latency load), which
  // a client on another machine never costs it. Latency is read from the kernel's receive
  // timestamps, so how late this process reads does not change it.
  void nap_ns(std::int64_t ns) {
    flush_all();
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    ::clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, nullptr);
    while (poll_ns(0) == kPollBatch) {
    }
  }

  static constexpr int kPollBatch = 512;

  // Returns how many socket events it handled.
  int poll_ns(std::int64_t timeout_ns) {
    flush_all();
    epoll_event evs[kPollBatch];
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(timeout_ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(timeout_ns % 1'000'000'000);
    int n = ::epoll_pwait2(ep_, evs, kPollBatch, &ts, nullptr);
    for (int i = 0; i < n; ++i) {
      Conn& c = conns_[evs[i].data.u32];
      if (c.fd < 0) continue;
      if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
        if (!(evs[i].events & EPOLLIN)) {
          fail(c, "hangup");
          continue;
        }
      }
      if (evs[i].events & EPOLLOUT) flush(c);
      if (evs[i].events & EPOLLIN) read(c);
    }
    flush_all();
    return std::max(n, 0);
  }

  void read(Conn& c) {
    char buf[65536];
    alignas(cmsghdr) char control[256];
    while (c.fd >= 0) {
      iovec iov{buf, sizeof buf};
      msghdr mh{};
      mh.msg_iov = &iov;
      mh.msg_iovlen = 1;
      mh.msg_control = control;
      mh.msg_controllen = sizeof control;
      ssize_t n = ::recvmsg(c.fd, &mh, 0);
      if (n == 0) return fail(c, "closed by the server");
      if (n < 0) {
        if (errno == EAGAIN) break;
        return fail(c, "read");
      }
      c.rx_user_ns = wall_ns();
      c.rx_kernel_ns = c.rx_user_ns;
      for (cmsghdr* cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPING) {
          timespec stamps[3];
          std::memcpy(stamps, CMSG_DATA(cm), sizeof stamps);
          if (stamps[0].tv_sec != 0) c.rx_kernel_ns = static_cast<std::int64_t>(stamps[0].tv_sec) * 1'000'000'000LL + stamps[0].tv_nsec;
        }
      c.in.append(buf, static_cast<std::size_t>(n));
      if (n < static_cast<ssize_t>(sizeof buf)) break;
    }
    if (c.stage == Stage::upgrading) {
      auto end = c.in.find("\r\n\r\n");
      if (end == std::string::npos) return;
      if (c.in.compare(0, 12, "HTTP/1.1 101") != 0) return fail(c, "handshake refused");
      c.in.erase(0, end + 4);
      c.stage = Stage::open;
    }
    frames(c);
  }

  void frames(Conn& c) {
    std::size_t pos = 0;
    while (c.fd >= 0) {
      if (c.in.size() - pos < 2) break;
      const auto* p = reinterpret_cast<const unsigned char*>(c.in.data() + pos);
      const int op = p[0] & 0x0f;
      const bool fin = p[0] & 0x80;
      std::uint64_t len = p[1] & 0x7f;
      std::size_t hdr = 2;
      if (len == 126) {
        if (c.in.size() - pos < 4) break;
        len = static_cast<std::uint64_t>(p[2]) << 8 | p[3];
        hdr = 4;
      } else if (len == 127) {
        if (c.in.size() - pos < 10) break;
        len = 0;
        for (int i = 0; i < 8; ++i) len = len << 8 | p[2 + i];
        hdr = 10;
      }
      if (c.in.size() - pos < hdr + len) break;
      std::string_view payload(c.in.data() + pos + hdr, static_cast<std::size_t>(len));
      pos += hdr + static_cast<std::size_t>(len);
      if (op == 0x8) {
        fail(c, "close frame");
        return;
      }
      if (op == 0x9) continue;  // servers here do not ping at the WebSocket level
      if (op == 0x1 && fin) {
        message(c, payload);
      } else if (op == 0x1 || op == 0x0) {
        c.frag.append(payload);
        if (fin) {
          std::string whole = std::move(c.frag);
          c.frag.clear();
          message(c, whole);
        }
      }
    }
    if (c.fd >= 0) c.in.erase(0, pos);
  }

  // ---- Engine.IO / Socket.IO ----

  void message(Conn& c, std::string_view m) {
    if (m.empty()) return;
    switch (m[0]) {
      case '0':
        send_text(c, "40");
        return;
      case '2':
        send_text(c, "3");
        return;
      case '1':
        return fail(c, "Engine.IO close");
      case '4':
        break;
      default:
        return;
    }
    if (m.size() >= 2 && m[1] == '0') {
      if (c.stage != Stage::connected) {
        c.stage = Stage::connected;
        --pending_connects_;
        ++connected_;
      }
      return;
    }
    if (m.size() >= 2 && m[1] == '1') return fail(c, "Socket.IO disconnect");
    if (m.size() < 5 || m[1] != '2' || m[2] != '[' || m[3] != '"') return;
    auto end = m.find('"', 4);
    if (end == std::string_view::npos) return;
    event(c, m.substr(4, end - 4), m.substr(end + 1));
  }

  void event(Conn& c, std::string_view name, std::string_view rest) {
    if (name == "candidate") return on_candidate(c, rest);
    if (name == "challenge") {
      c.nonce = std::string(field(rest, "nonce"));
      if (c.join_wanted) send_join(c);
      return;
    }
    if (name == "isStreaming") {
      if (c.watcher < 0 && !c.joined && rest.rfind(",true]", 0) == 0) {
        c.joined = true;
        ++live_;
        --joins_in_flight_;
      }
      return;
    }
    if (name == "watch" && c.watcher < 0) {
      // watch("<userId>", {...}): the watcher is admitted; the broadcaster offers.
      auto id = rest.substr(2, rest.find('"', 2) - 2);
      auto it = watcher_by_id_.find(std::string(id));
      if (it == watcher_by_id_.end()) return;
      Conn& w = watcher_conn(c.group, it->second);
      if (!w.joined) {
        w.joined = true;
        ++admitted_;
        --joins_in_flight_;
      }
      std::string offer = "42[\"offer\",\"" + broadcaster_.id + "\",{\"streamId\":\"" + stream_of(c) + "\",\"userId\":\"" +
                          id_of(w) + "\",\"description\":{\"type\":\"offer\",\"sdp\":\"" + escaped_sdp() + "\"}}]";
      send_text(c, offer);
      return;
    }
    if (name == "offer" && c.watcher >= 0) {
      ++received_relays_;
      exchange_step(c);
      std::string answer = "42[\"answer\",\"" + broadcaster_.id + "\",{\"streamId\":\"" + stream_of(c) + "\",\"userId\":\"" +
                           id_of(c) + "\",\"description\":{\"type\":\"answer\",\"sdp\":\"" + escaped_sdp() + "\"}}]";
      send_text(c, answer);
      for (int k = 0; k < o_.candidates; ++k) send_candidate(c, broadcaster_conn(c), 'e', wall_ns());
      return;
    }
    if (name == "answer" && c.watcher < 0) {
      ++received_relays_;
      auto user = field(rest, "userId");
      auto it = watcher_by_id_.find(std::string(user));
      if (it == watcher_by_id_.end()) return;
      Conn& w = watcher_conn(c.group, it->second);
      exchange_step(w);
      for (int k = 0; k < o_.candidates; ++k) send_candidate(c, w, 'e', wall_ns());
      return;
    }
    if (name == "error") {
      ++errors_;
      auto msg = field(rest, "message");
      if (errors_ <= 5) std::fprintf(stderr, "signal_load: error event on %d: %.*s\n", c.index, static_cast<int>(msg.size()), msg.data());
      if (msg.find("Too many joins") != std::string_view::npos && !c.joined) {
        --joins_in_flight_;
        join_queue_.push_back(c.index);  // the server is busy with the chain: retry
      } else if (!c.joined && (msg.find("Stream") != std::string_view::npos || msg.find("Signature") != std::string_view::npos ||
                               msg.find("subscribed") != std::string_view::npos || msg.find("already") != std::string_view::npos)) {
        --joins_in_flight_;
        ++join_refused_;
      }
      return;
    }
  }

  const std::string& escaped_sdp() {
    if (sdp_json_.empty())
      for (char ch : sdp_) {
        if (ch == '\r') sdp_json_ += "\\r";
        else if (ch == '\n') sdp_json_ += "\\n";
        else sdp_json_ += ch;
      }
    return sdp_json_;
  }

  void exchange_step(Conn& w) {
    if (w.exchange_left > 0 && --w.exchange_left == 0) {
      ++exchanges_done_;
      last_exchange_ns_ = now_ns();
    }
  }

  // candidate(targetId, {userId, streamId, candidate}); the candidate line carries the phase,
  // a send timestamp and nothing else the server looks at.
  void send_candidate(Conn& from, Conn& to, char phase, std::int64_t t) {
    char line[160];
    int n = std::snprintf(line, sizeof line,
                          "candidate:842163049 1 udp 1677729535 127.0.0.1 %d typ srflx raddr 0.0.0.0 rport 0 generation 0 "
                          "ufrag sK3q network-cost 999 x-b %c %lld",
                          40000 + (from.index % 20000), phase, static_cast<long long>(t));
    std::string m = "42[\"candidate\",\"" + id_of(to) + "\",{\"userId\":\"" + id_of(from) + "\",\"streamId\":\"" +
                    stream_of(from) + "\",\"candidate\":{\"candidate\":\"" + std::string(line, static_cast<std::size_t>(n)) +
                    "\",\"sdpMid\":\"0\",\"sdpMLineIndex\":0}}]";
    send_text(from, m);
  }

  void on_candidate(Conn& c, std::string_view rest) {
    ++received_relays_;
    auto tag = rest.find(" x-b ");
    if (tag == std::string_view::npos || tag + 6 >= rest.size()) return;
    const char phase = rest[tag + 5];
    const long long t = std::strtoll(rest.data() + tag + 7, nullptr, 10);
    if (phase == 'e') {
      if (c.watcher >= 0) return exchange_step(c);
      auto it = watcher_by_id_.find(std::string(rest.substr(2, 66)));
      if (it != watcher_by_id_.end()) exchange_step(watcher_conn(c.group, it->second));
      return;
    }
    if (phase == 'p' && phase_ == 'p') {
      if (c.watcher < 0) {
        auto it = watcher_by_id_.find(std::string(rest.substr(2, 66)));
        if (it != watcher_by_id_.end()) send_candidate(c, watcher_conn(c.group, it->second), 'p', t);
      } else {
        send_candidate(c, broadcaster_conn(c), 'p', wall_ns());
      }
      return;
    }
    if (phase == 'l') {
      relays_.push_back({t, c.rx_kernel_ns});
      user_latencies_.push_back(c.rx_user_ns - t);
    }
  }

  // ---- joins ----

  void pump_joins() {
    while (!join_queue_.empty() && joins_in_flight_ < o_.join_concurrency) {
      Conn& c = conns_[static_cast<std::size_t>(join_queue_.front())];
      join_queue_.pop_front();
      if (c.stage != Stage::connected) continue;
      ++joins_in_flight_;
      c.join_wanted = true;
      if (!o_.auth || !c.nonce.empty()) send_join(c);
    }
  }

  void send_join(Conn& c) {
    c.join_wanted = false;
    c.join_sent_ns = now_ns();
    const bool b = c.watcher < 0;
    const std::string& stream = stream_of(c);
    std::string payload = "{\"streamId\":\"" + stream + "\"";
    if (o_.auth) {
      const Key& k = b ? broadcaster_ : watcher_keys_[static_cast<std::size_t>(c.watcher)];
      std::string text = std::string("p2pstream-signal:v1:") + (b ? "broadcast" : "watch") + ":" + stream + ":" + c.nonce;
      payload += ",\"auth\":{\"publicKey\":\"" + k.id + "\",\"signature\":\"" + sign(k, text) + "\"}";
      c.nonce.clear();
    }
    payload += "}";
    send_text(c, std::string("42[\"") + (b ? "broadcast" : "watch") + "\",\"" + id_of(c) + "\"," + payload + "]");
  }

  Options o_;
  Key broadcaster_;
  std::vector<Key> watcher_keys_;
  std::unordered_map<std::string, int> watcher_by_id_;
  std::vector<std::string> streams_;
  std::vector<Conn> conns_;
  int groups_ = 0;
  std::string sdp_, sdp_json_;
  int ep_ = -1;
  sockaddr_in addr_{};
  std::vector<int> dirty_;
  std::uint64_t rng_ = 0x9e3779b97f4a7c15ULL;
  int pending_connects_ = 0, connected_ = 0, failed_ = 0, server_closes_ = 0;
  std::deque<int> join_queue_;
  int joins_in_flight_ = 0, live_ = 0, admitted_ = 0, join_refused_ = 0, errors_ = 0;
  int exchanges_done_ = 0;
  std::int64_t last_exchange_ns_ = 0;
  std::uint64_t received_relays_ = 0;
  char phase_ = 'e';
  std::vector<std::int64_t> user_latencies_;  // send -> read by this process
  ServerCpu server_cpu_;
  std::vector<p2p::bench::Relay> relays_;  // latency phase: send -> kernel receive timestamp (and --trace)
};

Options parse(int argc, char** argv) {
  Options o;
  auto need = [&](int& i) -> std::string {
    if (i + 1 >= argc) throw std::runtime_error(std::string(argv[i]) + " needs a value");
    return argv[++i];
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--host") o.host = need(i);
    else if (a == "--port") o.port = std::stoi(need(i));
    else if (a == "--conns") o.conns = std::stoi(need(i));
    else if (a == "--watchers") o.watchers = std::stoi(need(i));
    else if (a == "--streams") o.streams_file = need(i);
    else if (a == "--auth") o.auth = need(i) == "challenge";
    else if (a == "--sdp-bytes") o.sdp_bytes = std::stoi(need(i));
    else if (a == "--candidates") o.candidates = std::stoi(need(i));
    else if (a == "--peak-s") o.peak_s = std::stod(need(i));
    else if (a == "--window") o.window = std::stoi(need(i));
    else if (a == "--latency-s") o.latency_s = std::stod(need(i));
    else if (a == "--latency-fraction") o.latency_fraction = std::stod(need(i));
    else if (a == "--latency-rate") o.latency_rate = std::stod(need(i));
    else if (a == "--latency-mix") {
      const std::string mix = need(i);
      if (mix != "one-way" && mix != "two-way") throw std::runtime_error("--latency-mix is two-way (the default) or one-way");
      o.latency_two_way = mix == "two-way";
    }
    else if (a == "--pace-us") o.pace_us = std::max(10, std::stoi(need(i)));
    else if (a == "--skip-late-us") o.latency_skip_late_us = std::max(0, std::stoi(need(i)));
    else if (a == "--latency-wait") {
      const std::string w = need(i);
      if (w != "timer" && w != "epoll") throw std::runtime_error("--latency-wait is timer (the default) or epoll");
      o.latency_wait_epoll = w == "epoll";
    }
    else if (a == "--server-pid") o.server_pid = std::stoi(need(i));
    else if (a == "--connect-concurrency") o.connect_concurrency = std::stoi(need(i));
    else if (a == "--join-concurrency") o.join_concurrency = std::stoi(need(i));
    else if (a == "--timeout-s") o.timeout_s = std::stod(need(i));
    else if (a == "--trace") o.trace_file = need(i);
    else throw std::runtime_error("unknown option " + a);
  }
  if (o.port <= 0 || o.streams_file.empty()) throw std::runtime_error("--port and --streams are required");
  if (o.host.rfind("127.", 0) != 0) throw std::runtime_error("--host must be a loopback address (127.x.x.x)");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
    rlimit r{};
    if (::getrlimit(RLIMIT_NOFILE, &r) == 0) {
      r.rlim_cur = r.rlim_max;
      ::setrlimit(RLIMIT_NOFILE, &r);
    }
    Load load(parse(argc, argv));
    load.run();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "signal_load: %s\n", e.what());
    return 1;
  }
}
