// bench/signal/interference: which stretches of a latency run the host set rather than the server.
// Pure: it reads the messages' send and receive stamps and the server's CPU time, sampled about
// every millisecond, and finds the windows in which the server had work queued but either did
// not run (the hypervisor took its CPU; with paravirtual steal accounting a task's CPU time
// leaves that out) or ran so slowly that a message cost it far more CPU than usual.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

namespace p2p::bench {

// The server's CPU time so far (run_ns) at wall-clock time t_ns.
struct CpuSample {
  std::int64_t t_ns;
  std::int64_t run_ns;
};

// One relayed message: when it was sent, and the kernel's receive stamp at the far end.
struct Relay {
  std::int64_t sent_ns;
  std::int64_t received_ns;
};

struct Interference {
  int windows = 0;          // windows covered by both the messages and the CPU samples
  int busy_windows = 0;     // windows with over 1 ms of messages queued at both ends
  double median_cost_us = 0;  // the server's CPU per relayed message, median over all windows
  double withheld_ms = 0;   // busy windows where the server ran under 80% of the time: time not run
  double slowed_ms = 0;     // busy windows where a message cost over 1.5x the median: time lost
  int host_windows = 0;     // busy windows counted in withheld_ms or slowed_ms
  // Messages the host alone made later than `late_ns`: sent while the server's CPU time stood
  // still (under 10% of the wall time) for a stretch that went on more than late_ns after them.
  // No server could have relayed those in time; over 1% of them makes p99 > late_ns certain.
  std::int64_t forced_late = 0;
  double forced_late_pct = 0;
};

namespace interference_detail {

// The server's CPU time at t, interpolated between the samples around it.
inline double run_at(const std::vector<CpuSample>& cpu, std::int64_t t) {
  auto it = std::lower_bound(cpu.begin(), cpu.end(), t, [](const CpuSample& c, std::int64_t v) { return c.t_ns < v; });
  if (it == cpu.begin()) return static_cast<double>(cpu.front().run_ns);
  if (it == cpu.end()) return static_cast<double>(cpu.back().run_ns);
  const CpuSample& b = *it;
  const CpuSample& a = *(it - 1);
  if (b.t_ns == a.t_ns) return static_cast<double>(b.run_ns);
  return static_cast<double>(a.run_ns) +
         static_cast<double>(b.run_ns - a.run_ns) * static_cast<double>(t - a.t_ns) / static_cast<double>(b.t_ns - a.t_ns);
}

inline std::int64_t count_upto(const std::vector<std::int64_t>& sorted, std::int64_t t) {
  return std::upper_bound(sorted.begin(), sorted.end(), t) - sorted.begin();
}

}  // namespace interference_detail

inline Interference find_interference(const std::vector<Relay>& relays, std::vector<CpuSample> cpu,
                                      std::int64_t window_ns = 10'000'000, std::int64_t late_ns = 5'000'000) {
  using namespace interference_detail;
  Interference out;
  if (relays.size() < 2 || cpu.size() < 2 || window_ns <= 0) return out;
  std::sort(cpu.begin(), cpu.end(), [](const CpuSample& a, const CpuSample& b) { return a.t_ns < b.t_ns; });
  std::vector<std::int64_t> sent, received;
  sent.reserve(relays.size());
  received.reserve(relays.size());
  for (const auto& r : relays) {
    sent.push_back(r.sent_ns);
    received.push_back(r.received_ns);
  }
  std::sort(sent.begin(), sent.end());
  std::sort(received.begin(), received.end());
  const double span_s = static_cast<double>(sent.back() - sent.front()) / 1e9;
  if (span_s <= 0) return out;
  // "Work queued": over a millisecond's worth of messages sent and not yet received.
  const double busy_queue = static_cast<double>(sent.size()) / span_s * 1e-3;
  const std::int64_t from = std::max(sent.front(), cpu.front().t_ns), to = std::min(sent.back(), cpu.back().t_ns);

  struct Window {
    std::int64_t handled;
    double run_ns;
    bool busy;
  };
  std::vector<Window> ws;
  std::vector<double> costs;
  for (std::int64_t t = from; t + window_ns <= to; t += window_ns) {
    const std::int64_t handled = count_upto(received, t + window_ns) - count_upto(received, t);
    const double run = run_at(cpu, t + window_ns) - run_at(cpu, t);
    const auto queued = [&](std::int64_t at) { return static_cast<double>(count_upto(sent, at) - count_upto(received, at)); };
    ws.push_back({handled, run, queued(t) > busy_queue && queued(t + window_ns) > busy_queue});
    if (handled > 0) costs.push_back(run / static_cast<double>(handled));
  }
  // Stretches between samples in which the server did not run, merged when they touch.
  for (std::size_t i = 0; i + 1 < cpu.size();) {
    const auto stood_still = [&](std::size_t k) {
      return static_cast<double>(cpu[k + 1].run_ns - cpu[k].run_ns) < 0.1 * static_cast<double>(cpu[k + 1].t_ns - cpu[k].t_ns);
    };
    if (!stood_still(i)) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j + 1 < cpu.size() && stood_still(j)) ++j;
    const std::int64_t start = cpu[i].t_ns, end = cpu[j].t_ns;
    if (end - start > late_ns) out.forced_late += count_upto(sent, end - late_ns) - count_upto(sent, start - 1);
    i = j;
  }
  out.forced_late_pct = 100.0 * static_cast<double>(out.forced_late) / static_cast<double>(sent.size());
  out.windows = static_cast<int>(ws.size());
  if (costs.empty()) return out;
  std::nth_element(costs.begin(), costs.begin() + static_cast<std::ptrdiff_t>(costs.size() / 2), costs.end());
  const double median = costs[costs.size() / 2];
  out.median_cost_us = median / 1e3;
  const double w = static_cast<double>(window_ns);
  for (const auto& x : ws) {
    if (!x.busy) continue;
    ++out.busy_windows;
    if (x.run_ns < 0.8 * w) {
      out.withheld_ms += (w - x.run_ns) / 1e6;
      ++out.host_windows;
    } else if (x.handled == 0 || x.run_ns / static_cast<double>(x.handled) > 1.5 * median) {
      out.slowed_ms += std::max(0.0, w - static_cast<double>(x.handled) * median) / 1e6;
      ++out.host_windows;
    }
  }
  return out;
}

}  // namespace p2p::bench
