#include "timespec/timespec.hpp"

#include <fmt/format.h>

#include <cctype>
#include <chrono>
#include <ctime>
#include <limits>

#include "util/error.hpp"

namespace p2p::timespec {
namespace {

constexpr std::uint64_t kSecond = 1000, kMinute = 60 * kSecond, kHour = 60 * kMinute, kDay = 24 * kHour;

[[noreturn]] void bad_time(std::string_view text) {
  throw UsageError(fmt::format(
      "'{}' is not a time: use now, +30m (from now), or ISO-8601 such as 2026-11-21T18:00+01:00", text));
}

// Reads exactly n digits at text[pos]; -1 if not there.
int digits(std::string_view text, std::size_t pos, std::size_t n) {
  if (pos + n > text.size()) return -1;
  int v = 0;
  for (std::size_t i = 0; i < n; ++i) {
    char c = text[pos + i];
    if (!std::isdigit(static_cast<unsigned char>(c))) return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }
int month_days(int y, int m) {
  static constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : days[m - 1];
}

std::uint64_t parse_iso(std::string_view text) {
  int y = digits(text, 0, 4), mo = digits(text, 5, 2), d = digits(text, 8, 2);
  if (y < 1970 || text.size() < 16 || text[4] != '-' || text[7] != '-' || (text[10] != 'T' && text[10] != ' ') ||
      text[13] != ':')
    bad_time(text);
  int h = digits(text, 11, 2), mi = digits(text, 14, 2), s = 0, ms = 0;
  std::size_t pos = 16;
  if (pos < text.size() && text[pos] == ':') {
    s = digits(text, pos + 1, 2);
    pos += 3;
    if (pos < text.size() && text[pos] == '.') {
      std::size_t start = ++pos;
      while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) ++pos;
      if (pos == start) bad_time(text);
      // Keep milliseconds; finer digits are dropped.
      for (std::size_t i = 0; i < 3; ++i) ms = ms * 10 + (start + i < pos ? text[start + i] - '0' : 0);
    }
  }
  if (mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo) || h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 ||
      s > 60)
    bad_time(text);
  std::int64_t local_s = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 +
                         h * 3600 + mi * 60 + s;
  std::string_view zone = text.substr(pos);
  // format_local prints "YYYY-MM-DD HH:MM +01:00"; accept that back.
  if (zone.size() > 1 && zone[0] == ' ') zone.remove_prefix(1);
  std::int64_t epoch_s;
  if (zone.empty()) {
    std::tm tm{};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    tm.tm_isdst = -1;
    std::time_t t = std::mktime(&tm);
    if (t == static_cast<std::time_t>(-1)) bad_time(text);
    epoch_s = t;
  } else if (zone == "Z" || zone == "z") {
    epoch_s = local_s;
  } else {
    if (zone[0] != '+' && zone[0] != '-') bad_time(text);
    int oh = digits(zone, 1, 2), om;
    if (zone.size() == 6 && zone[3] == ':')
      om = digits(zone, 4, 2);
    else if (zone.size() == 5)
      om = digits(zone, 3, 2);
    else if (zone.size() == 3)
      om = 0;
    else
      bad_time(text);
    if (oh < 0 || oh > 14 || om < 0 || om > 59) bad_time(text);
    std::int64_t off = (oh * 3600 + om * 60) * (zone[0] == '-' ? -1 : 1);
    epoch_s = local_s - off;
  }
  if (epoch_s < 0) bad_time(text);
  return static_cast<std::uint64_t>(epoch_s) * 1000 + static_cast<std::uint64_t>(ms);
}

}  // namespace

std::uint64_t parse_duration(std::string_view text) {
  auto bad = [&] {
    throw UsageError(fmt::format("'{}' is not a duration: use e.g. 45s, 30m, 1h, 1h30m or 2d", text));
  };
  if (text.empty()) bad();
  std::uint64_t total = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::uint64_t n = 0;
    std::size_t start = pos;
    while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
      if (n > 1'000'000'000) bad();  // far beyond any schedule; keeps the arithmetic in range
      n = n * 10 + static_cast<std::uint64_t>(text[pos++] - '0');
    }
    if (pos == start || pos == text.size()) bad();
    std::uint64_t unit;
    switch (text[pos++]) {
      case 'd': unit = kDay; break;
      case 'h': unit = kHour; break;
      case 'm': unit = kMinute; break;
      case 's': unit = kSecond; break;
      default: bad();
    }
    if (n * unit > std::numeric_limits<std::uint64_t>::max() - total) bad();  // a wrapped sum would be a wrong time
    total += n * unit;
  }
  return total;
}

std::uint64_t parse_time(std::string_view text, std::uint64_t now) {
  if (text == "now") return now;
  if (!text.empty() && text[0] == '+') {
    auto d = parse_duration(text.substr(1));
    if (d > std::numeric_limits<std::uint64_t>::max() - now) bad_time(text);
    return now + d;
  }
  return parse_iso(text);
}

std::string format_local(std::uint64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", &tm);
  long off = tm.tm_gmtoff;
  char sign = off < 0 ? '-' : '+';
  if (off < 0) off = -off;
  return fmt::format("{} {}{:02}:{:02}", buf, sign, off / 3600, (off % 3600) / 60);
}

std::string format_utc(std::uint64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string format_duration(std::uint64_t ms) {
  if (ms < kSecond) return fmt::format("{}ms", ms);
  std::string out;
  std::uint64_t s = ms / 1000;
  if (s >= 86400) out += fmt::format("{}d", s / 86400), s %= 86400;
  if (s >= 3600) out += fmt::format("{}h", s / 3600), s %= 3600;
  if (s >= 60) out += fmt::format("{}m", s / 60), s %= 60;
  if (s > 0) out += fmt::format("{}s", s);
  return out;
}

std::uint64_t now_ms() {
  using namespace std::chrono;
  return static_cast<std::uint64_t>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

}  // namespace p2p::timespec
