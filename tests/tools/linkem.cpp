// linkem: a userspace link emulator for tests. It creates two TAP devices and forwards every
// Ethernet frame between them with a fixed one-way delay and random loss per direction, since
// this kernel has no netem qdisc. Move each TAP into a network namespace (or a bridge) and the
// two sides talk over a real link with delay and loss.
//
//   linkem TAP_A TAP_B [--delay MS] [--loss P] [--delay-ba MS] [--loss-ba P] [--seed N]
//
// --delay/--loss apply to both directions; --delay-ba/--loss-ba override B->A. P is a fraction
// (0.02 = 2%). It prints "ready" once both devices exist, then one JSON line of counters per
// second and a last one with "final":true on SIGINT/SIGTERM. Exit 2 on bad flags, 1 on failure.
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace p2p::linkem {
namespace {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// A TAP device without packet info headers: each read or write is one Ethernet frame.
int open_tap(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ) throw UsageError("a TAP name must be 1 to 15 characters: " + name);
  int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(std::string("cannot open /dev/net/tun (needs root): ") + std::strerror(errno));
  ifreq ifr{};
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (::ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    ::close(fd);
    throw std::runtime_error("cannot create TAP " + name + ": " + std::strerror(e));
  }
  return fd;
}

struct Frame {
  std::int64_t due_ns;
  std::vector<std::uint8_t> bytes;
};

// One direction of the link: frames wait `delay` in order; a fraction `loss` never arrives.
class Direction {
 public:
  Direction(int from, int to, double delay_ms, double loss, std::uint64_t seed)
      : from_(from), to_(to), delay_ns_(static_cast<std::int64_t>(delay_ms * 1e6)), drop_(loss), rng_(seed) {}

  void read_all(std::int64_t now) {
    std::uint8_t buf[65536];
    for (;;) {
      ssize_t n = ::read(from_, buf, sizeof buf);
      if (n <= 0) return;  // EAGAIN, or the device is down
      ++frames_;
      bytes_ += static_cast<std::uint64_t>(n);
      if (drop_(rng_)) {
        ++dropped_;
        continue;
      }
      if (queue_.size() >= kMaxQueued) {
        ++overflow_;
        continue;
      }
      queue_.push_back({now + delay_ns_, std::vector<std::uint8_t>(buf, buf + n)});
    }
  }
  // Writes the frames whose time has come; returns when the next one is due (or -1).
  std::int64_t flush(std::int64_t now) {
    while (!queue_.empty() && queue_.front().due_ns <= now) {
      const auto& f = queue_.front().bytes;
      if (::write(to_, f.data(), f.size()) < 0) ++undeliverable_;  // the far side is down
      queue_.pop_front();
    }
    return queue_.empty() ? -1 : queue_.front().due_ns;
  }
  std::string json() const {
    char out[256];
    std::snprintf(out, sizeof out,
                  "{\"frames\":%llu,\"bytes\":%llu,\"dropped\":%llu,\"overflow\":%llu,\"undeliverable\":%llu,"
                  "\"queued\":%zu}",
                  static_cast<unsigned long long>(frames_), static_cast<unsigned long long>(bytes_),
                  static_cast<unsigned long long>(dropped_), static_cast<unsigned long long>(overflow_),
                  static_cast<unsigned long long>(undeliverable_), queue_.size());
    return out;
  }

 private:
  static constexpr std::size_t kMaxQueued = 20000;  // about 1 s at 200 Mbit/s of full frames
  int from_, to_;
  std::int64_t delay_ns_;
  std::bernoulli_distribution drop_;
  std::mt19937_64 rng_;
  std::deque<Frame> queue_;
  std::uint64_t frames_ = 0, bytes_ = 0, dropped_ = 0, overflow_ = 0, undeliverable_ = 0;
};

double number(const std::string& flag, const char* text, double lo, double hi) {
  char* end = nullptr;
  double v = std::strtod(text, &end);
  if (!text[0] || *end || !(v >= lo && v <= hi))
    throw UsageError(flag + " must be a number from " + std::to_string(lo) + " to " + std::to_string(hi));
  return v;
}

struct Args {
  std::string tap_a, tap_b;
  double delay_ab = 0, delay_ba = -1, loss_ab = 0, loss_ba = -1;
  std::uint64_t seed = 1;
};

Args parse(int argc, char** argv) {
  Args a;
  std::vector<std::string> names;
  for (int i = 1; i < argc; ++i) {
    std::string f = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) throw UsageError(f + " needs a value");
      return argv[++i];
    };
    if (f == "--delay") a.delay_ab = number(f, value(), 0, 10000);
    else if (f == "--loss") a.loss_ab = number(f, value(), 0, 1);
    else if (f == "--delay-ba") a.delay_ba = number(f, value(), 0, 10000);
    else if (f == "--loss-ba") a.loss_ba = number(f, value(), 0, 1);
    else if (f == "--seed") a.seed = static_cast<std::uint64_t>(number(f, value(), 0, 1e15));
    else if (!f.empty() && f[0] == '-') throw UsageError("unknown flag " + f);
    else names.push_back(f);
  }
  if (names.size() != 2) throw UsageError("give two TAP device names");
  a.tap_a = names[0];
  a.tap_b = names[1];
  if (a.delay_ba < 0) a.delay_ba = a.delay_ab;
  if (a.loss_ba < 0) a.loss_ba = a.loss_ab;
  return a;
}

int run(const Args& a) {
  int fa = open_tap(a.tap_a);
  int fb = open_tap(a.tap_b);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
  if (sfd < 0) throw std::runtime_error(std::string("signalfd: ") + std::strerror(errno));

  Direction ab(fa, fb, a.delay_ab, a.loss_ab, a.seed);
  Direction ba(fb, fa, a.delay_ba, a.loss_ba, a.seed * 7919 + 1);
  std::printf("ready\n");
  std::fflush(stdout);

  const std::int64_t start = now_ns();
  std::int64_t next_report = start + 1'000'000'000;
  auto report = [&](bool final) {
    std::printf("{\"t\":%.3f,\"ab\":%s,\"ba\":%s%s}\n", static_cast<double>(now_ns() - start) / 1e9, ab.json().c_str(),
                ba.json().c_str(), final ? ",\"final\":true" : "");
    std::fflush(stdout);
  };
  for (;;) {
    std::int64_t now = now_ns();
    std::int64_t wake = next_report;
    for (std::int64_t due : {ab.flush(now), ba.flush(now)})
      if (due >= 0 && due < wake) wake = due;
    std::int64_t wait = std::max<std::int64_t>(0, wake - now);
    timespec ts{static_cast<time_t>(wait / 1'000'000'000), static_cast<long>(wait % 1'000'000'000)};
    pollfd fds[3] = {{fa, POLLIN, 0}, {fb, POLLIN, 0}, {sfd, POLLIN, 0}};
    int n = ::ppoll(fds, 3, &ts, nullptr);
    if (n < 0 && errno != EINTR) throw std::runtime_error(std::string("ppoll: ") + std::strerror(errno));
    now = now_ns();
    if (n > 0 && fds[2].revents) {
      report(true);
      return 0;
    }
    if (n > 0 && fds[0].revents) ab.read_all(now);
    if (n > 0 && fds[1].revents) ba.read_all(now);
    if (now >= next_report) {
      report(false);
      next_report += 1'000'000'000;
    }
  }
}

}  // namespace
}  // namespace p2p::linkem

int main(int argc, char** argv) {
  try {
    return p2p::linkem::run(p2p::linkem::parse(argc, argv));
  } catch (const p2p::linkem::UsageError& e) {
    std::fprintf(stderr, "linkem: %s\nusage: linkem TAP_A TAP_B [--delay MS] [--loss P] [--delay-ba MS] [--loss-ba P] [--seed N]\n",
                 e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "linkem: %s\n", e.what());
    return 1;
  }
}
