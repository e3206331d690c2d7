// bench/signal/proc_stat: what /proc/stat says the hypervisor took (steal), from the machine or one
// CPU, for the benchmark's tools (signal_load, host_noise).
#pragma once
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

namespace p2p::bench {

// Seconds of steal (the 8th value) on the /proc/stat line `name` since boot: "cpu" for the whole
// machine, "cpuN" for one CPU; -1 if there is no such line.
inline double steal_s(const std::string& name) {
  std::ifstream in("/proc/stat");
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::string first;
    f >> first;
    if (first != name) continue;
    long long v[8] = {};
    for (auto& x : v) f >> x;
    return static_cast<double>(v[7]) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  return -1;
}

inline double cpu_steal_s(int cpu) { return steal_s("cpu" + std::to_string(cpu)); }

}  // namespace p2p::bench
