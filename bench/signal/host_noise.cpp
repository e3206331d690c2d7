// bench/signal/host_noise: how much the machine itself disturbs one CPU, with nothing of ours
// running, so a latency figure can be read against it. Two measures, one after the other:
//   gaps  - a loop that only reads the clock; any jump over 1 ms is time the CPU was taken away
//           (an interrupt storm, another task, or the hypervisor);
//   speed - the same fixed arithmetic block timed over and over; windows that run slower than the
//           best show a CPU that runs but runs slower (a busy hyperthread sibling on the host),
//           which steal time does not show.
// Also prints the steal that /proc/stat recorded for that CPU meanwhile.
//
//   host_noise [--cpu N] [--seconds S] [--json]
// Run it pinned (it pins itself with --cpu) on an otherwise idle machine, at the priority the
// benchmark uses (e.g. under nice -n -20); SCHED_FIFO would add the kernel's RT throttling.
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "proc_stat.hpp"

namespace {

std::int64_t now_ns() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

// A block of dependent multiply-adds the compiler cannot fold away.
std::uint64_t block(std::uint64_t x) {
  for (int i = 0; i < 100000; ++i) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
  return x;
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "host_noise: %s\nusage: host_noise [--cpu N] [--seconds S] [--json]\n", why);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  int cpu = 0;
  double seconds = 10;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json") {
      json = true;
    } else if ((a == "--cpu" || a == "--seconds") && i + 1 < argc) {
      char* end = nullptr;
      const double v = std::strtod(argv[++i], &end);
      if (*end != '\0' || v < 0) usage(("bad value for " + a).c_str());
      if (a == "--cpu") cpu = static_cast<int>(v);
      else seconds = v;
    } else {
      usage(("unknown argument " + a).c_str());
    }
  }
  if (seconds < 1) usage("--seconds must be at least 1");
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) usage(("cannot pin to CPU " + std::to_string(cpu)).c_str());

  // ---- gaps: half the time ----
  const double steal0 = p2p::bench::cpu_steal_s(cpu);
  const std::int64_t gap_end = now_ns() + static_cast<std::int64_t>(seconds / 2 * 1e9);
  std::int64_t last = now_ns(), lost = 0, worst = 0;
  int over1 = 0, over5 = 0;
  for (std::int64_t t = last; t < gap_end; last = t) {
    t = now_ns();
    const std::int64_t g = t - last;
    if (g > 1'000'000) {
      ++over1;
      over5 += g > 5'000'000;
      lost += g;
      worst = std::max(worst, g);
    }
  }

  // ---- speed: the other half ----
  std::vector<double> us;
  std::uint64_t sink = 1;
  const std::int64_t speed_end = now_ns() + static_cast<std::int64_t>(seconds / 2 * 1e9);
  while (now_ns() < speed_end) {
    const std::int64_t a = now_ns();
    sink = block(sink);
    us.push_back(static_cast<double>(now_ns() - a) / 1e3);
  }
  const double steal = p2p::bench::cpu_steal_s(cpu) - steal0;
  asm volatile("" : : "r"(sink));  // the blocks' result counts as used: they are not optimised away
  const double best = *std::min_element(us.begin(), us.end());
  // Windows of 20 blocks (a few ms each): the share that ran over 15% slower than the best block.
  const std::size_t w = 20;
  std::size_t windows = 0, slow = 0;
  double slowest = 0;
  for (std::size_t i = 0; i + w <= us.size(); i += w, ++windows) {
    double sum = 0;
    for (std::size_t j = i; j < i + w; ++j) sum += us[j];
    const double ratio = sum / static_cast<double>(w) / best;
    slow += ratio > 1.15;
    slowest = std::max(slowest, ratio);
  }
  const double window_ms = best * static_cast<double>(w) / 1e3;
  const double slow_pct = windows ? 100.0 * static_cast<double>(slow) / static_cast<double>(windows) : 0;
  if (json) {
    std::printf(
        "{\"cpu\":%d,\"seconds\":%.1f,\"gaps_over_1ms\":%d,\"gaps_over_5ms\":%d,\"gap_max_ms\":%.2f,\"gap_lost_pct\":%.3f,"
        "\"window_ms\":%.2f,\"windows_15pct_slower_pct\":%.2f,\"slowest_window_ratio\":%.2f,\"steal_pct\":%.2f}\n",
        cpu, seconds, over1, over5, static_cast<double>(worst) / 1e6, 100.0 * static_cast<double>(lost) / (seconds / 2 * 1e9),
        window_ms, slow_pct, slowest, 100.0 * steal / seconds);
    return 0;
  }
  std::printf("CPU %d, %.0f s (half gaps, half speed)\n", cpu, seconds);
  std::printf("  gaps over 1 ms: %d (%d over 5 ms), longest %.1f ms, %.2f%% of the time lost\n", over1, over5,
              static_cast<double>(worst) / 1e6, 100.0 * static_cast<double>(lost) / (seconds / 2 * 1e9));
  std::printf("  speed: %.1f%% of %.1f ms windows ran over 15%% slower than the fastest; slowest %.2fx\n", slow_pct,
              window_ms, slowest);
  std::printf("  steal recorded for CPU %d: %.2f%% of the time\n", cpu, 100.0 * steal / seconds);
  return 0;
}
