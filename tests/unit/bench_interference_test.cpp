// bench/signal/interference: a simulated single-server queue, with and without the host taking
// its CPU, read back through find_interference.
#include "bench/signal/interference.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <functional>

namespace {

using p2p::bench::CpuSample;
using p2p::bench::find_interference;
using p2p::bench::Relay;

struct Simulated {
  std::vector<Relay> relays;
  std::vector<CpuSample> cpu;
};

// Messages arrive every `gap_ns`; each costs `cost_ns` of CPU time, scaled by speed(t) (2 = the CPU
// runs at half speed). While available(t) is false the server does not run and its CPU time
// stands still. Sampled every millisecond, as the load generator does.
Simulated simulate(std::int64_t seconds_ms, std::int64_t gap_ns, std::int64_t cost_ns, const std::function<bool(std::int64_t)>& available,
             const std::function<double(std::int64_t)>& speed) {
  constexpr std::int64_t step = 1'000;  // 1 us
  const std::int64_t end = seconds_ms * 1'000'000;
  Simulated r;
  std::deque<std::int64_t> queue;
  std::int64_t next_arrival = 0, run_ns = 0;
  double left = 0;  // CPU still owed to the message at the head
  for (std::int64_t t = 0; t < end; t += step) {
    while (next_arrival <= t) {
      queue.push_back(next_arrival);
      next_arrival += gap_ns;
    }
    if (t % 1'000'000 == 0) r.cpu.push_back({t, run_ns});
    if (queue.empty() || !available(t)) continue;
    run_ns += step;
    double budget = static_cast<double>(step) / speed(t);
    while (!queue.empty() && budget > 0) {
      if (left <= 0) left = static_cast<double>(cost_ns);
      const double used = std::min(budget, left);
      left -= used;
      budget -= used;
      if (left <= 0) {
        r.relays.push_back({queue.front(), t + step});
        queue.pop_front();
      }
    }
  }
  return r;
}

const auto always = [](std::int64_t) { return true; };
const auto full_speed = [](std::int64_t) { return 1.0; };

p2p::bench::Interference read_back(const Simulated& r) { return find_interference(r.relays, r.cpu); }

TEST(BenchInterference, AServerThatKeepsUpShowsNothing) {
  // 100,000 msg/s at 7 us each: the server is busy 70% of the time and never queues a millisecond.
  const auto x = read_back(simulate(500, 10'000, 7'000, always, full_speed));
  EXPECT_GE(x.windows, 45);
  EXPECT_EQ(x.busy_windows, 0);
  EXPECT_EQ(x.withheld_ms, 0);
  EXPECT_EQ(x.slowed_ms, 0);
  EXPECT_NEAR(x.median_cost_us, 7.0, 0.5);
  EXPECT_EQ(x.forced_late, 0);
}

TEST(BenchInterference, AStallWithWorkQueuedIsCountedAsWithheld) {
  // The host takes the CPU for 30 ms; the queue then takes ~70 ms to drain at 70% load.
  const auto x = read_back(simulate(500, 10'000, 7'000, [](std::int64_t t) { return t < 200'000'000 || t >= 230'000'000; }, full_speed));
  EXPECT_GE(x.busy_windows, 5);
  EXPECT_GE(x.host_windows, 2);
  EXPECT_GT(x.withheld_ms, 15);
  EXPECT_LT(x.withheld_ms, 35);
  EXPECT_EQ(x.slowed_ms, 0);
  // Sent in the stall's first 25 ms (2,500 messages): at least 5 ms late whatever the server does.
  EXPECT_GE(x.forced_late, 2400);
  EXPECT_LE(x.forced_late, 2600);
  EXPECT_NEAR(x.forced_late_pct, 5.0, 0.3);
}

TEST(BenchInterference, ACpuRunningAtHalfSpeedIsCountedAsSlow) {
  // For 60 ms each message costs twice the CPU (the host's other tenants share the core): the
  // server falls behind although it runs all the time.
  const auto x = read_back(simulate(600, 10'000, 7'000, always,
                         [](std::int64_t t) { return t >= 200'000'000 && t < 260'000'000 ? 2.0 : 1.0; }));
  EXPECT_GE(x.busy_windows, 3);
  EXPECT_GT(x.slowed_ms, 5);
  EXPECT_EQ(x.withheld_ms, 0);
  EXPECT_EQ(x.forced_late, 0);  // slow, but it ran: a faster server would have kept up
}

TEST(BenchInterference, AnOverloadedServerIsNotBlamedOnTheHost) {
  // 100,000 msg/s at 12 us each: the queue grows all along, but the server runs all the time at
  // its usual cost per message, so nothing is the host's.
  const auto x = read_back(simulate(300, 10'000, 12'000, always, full_speed));
  EXPECT_GE(x.busy_windows, 20);
  EXPECT_EQ(x.host_windows, 0);
  EXPECT_EQ(x.withheld_ms, 0);
  EXPECT_EQ(x.slowed_ms, 0);
  EXPECT_EQ(x.forced_late, 0);
}

TEST(BenchInterference, AShortStallForcesNothingLate) {
  // 4 ms without the CPU delays messages by at most 4 ms: nothing is forced past 5 ms.
  const auto x = read_back(simulate(300, 10'000, 7'000, [](std::int64_t t) { return t < 100'000'000 || t >= 104'000'000; }, full_speed));
  EXPECT_EQ(x.forced_late, 0);
}

TEST(BenchInterference, TooLittleDataGivesZeros) {
  EXPECT_EQ(find_interference({}, {}).windows, 0);
  EXPECT_EQ(find_interference({{1, 2}, {3, 4}}, {{0, 0}}).windows, 0);
  EXPECT_EQ(find_interference({{1, 2}, {3, 4}}, {{0, 0}, {5, 5}}, 0).windows, 0);
}

}  // namespace
