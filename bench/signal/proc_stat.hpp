// bench/signal/proc_stat: what /proc/stat says the hypervisor took from one CPU, for the
// benchmark's tools (signal_load, host_noise).
#pragma once
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

namespace p2p::bench {

// Seconds of steal recorded for CPU `cpu` (the 8th value of its /proc/stat line) since boot, or -1.
inline double cpu_steal_s(int cpu) {
  std::ifstream in("/proc/stat");
  const std::string want = "cpu" + std::to_string(cpu);
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::string name;
    f >> name;
    if (name != want) continue;
    long long v[8] = {};
    for (auto& x : v) f >> x;
    return static_cast<double>(v[7]) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  return -1;
}

}  // namespace p2p::bench
