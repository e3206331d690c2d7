// Unit tests for timespec: durations, the time forms users type (now, +dur,
// ISO-8601 with and without an offset), and how times print under TZ.
// Expected epoch values were computed independently (Python's datetime).
#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>
#include <optional>
#include <string>

#include "timespec/timespec.hpp"
#include "util/error.hpp"

namespace p2p::timespec {
namespace {

constexpr std::uint64_t kS = 1000, kM = 60 * kS, kH = 60 * kM, kD = 24 * kH;

// 2026-11-21T18:30:00Z and friends (python: datetime.fromisoformat(...).timestamp()).
constexpr std::uint64_t k1830Z = 1795285800000;   // 2026-11-21T18:30:00Z
constexpr std::uint64_t k1730Z = 1795282200000;   // 2026-11-21T17:30:00Z
constexpr std::uint64_t k1330Z = 1795267800000;   // 2026-11-21T13:30:00Z
constexpr std::uint64_t k1300Z = 1795266000000;   // 2026-11-21T13:00:00Z
constexpr std::uint64_t kNext0000Z = 1795305600000;  // 2026-11-22T00:00:00Z
constexpr std::uint64_t kJuly1000Z = 1782900000000;  // 2026-07-01T10:00:00Z
constexpr std::uint64_t kLeap1000Z = 1835431200000;  // 2028-02-29T10:00:00Z

// Sets TZ for one test and restores the previous value afterwards.
class TimespecTz : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const char* v = std::getenv("TZ")) saved_ = v;
  }
  void TearDown() override {
    if (saved_) ::setenv("TZ", saved_->c_str(), 1);
    else ::unsetenv("TZ");
    ::tzset();
  }
  static void use(const char* tz) {
    ::setenv("TZ", tz, 1);
    ::tzset();
  }

 private:
  std::optional<std::string> saved_;
};

TEST(TimespecDuration, AcceptsEachUnitAndCombinations) {
  EXPECT_EQ(parse_duration("45s"), 45 * kS);
  EXPECT_EQ(parse_duration("30m"), 30 * kM);
  EXPECT_EQ(parse_duration("1h"), kH);
  EXPECT_EQ(parse_duration("1h30m"), 90 * kM);
  EXPECT_EQ(parse_duration("2d"), 2 * kD);
  EXPECT_EQ(parse_duration("1d2h3m4s"), kD + 2 * kH + 3 * kM + 4 * kS);
  EXPECT_EQ(parse_duration("90m"), parse_duration("1h30m"));
  EXPECT_EQ(parse_duration("0s"), 0u);
  EXPECT_EQ(parse_duration("0045s"), 45 * kS);
}

TEST(TimespecDuration, RejectsMalformedInputWithUsageError) {
  for (const char* bad : {"", "5", "h", "-5m", "+5m", "1x", "1h30", "5 m", " 5m", "5m ", "1.5h", "m5", "1hh",
                          "99999999999d", "100000000000000000000s"}) {
    SCOPED_TRACE(bad);
    EXPECT_THROW(parse_duration(bad), UsageError);
  }
}

TEST(TimespecDuration, ErrorMessageNamesTheInput) {
  try {
    parse_duration("7y");
    FAIL() << "7y was accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("'7y'"), std::string::npos) << e.what();
    EXPECT_EQ(e.code(), Exit::usage);
  }
}

TEST(TimespecDuration, LargestAcceptedPartsStayExact) {
  // Ten digits is the most one part may have; the arithmetic must still be exact.
  EXPECT_EQ(parse_duration("1000000000s"), 1'000'000'000ull * kS);
  EXPECT_EQ(parse_duration("9999999999d"), 9'999'999'999ull * kD);
}

TEST(TimespecDuration, ASumThatWouldOverflowIsRejected) {
  // Each part alone is accepted, but 300 of them exceed 2^64 ms: a wrapped total
  // would silently turn "+<huge>" into a small or past time.
  std::string huge;
  for (int i = 0; i < 300; ++i) huge += "9999999999d";
  EXPECT_THROW(parse_duration(huge), UsageError);
}

// 21 x 9999999999d + 3503982355d + 51951s is exactly 2^64 - 1 - 615 ms.
std::string almost_max_duration() {
  std::string d;
  for (int i = 0; i < 21; ++i) d += "9999999999d";
  return d + "3503982355d51951s";
}

TEST(TimespecDuration, AcceptsSumsUpToTheLimit) {
  EXPECT_EQ(parse_duration(almost_max_duration()), UINT64_MAX - 615);
}

TEST(TimespecParseTime, RelativeTimeThatWouldOverflowIsRejected) {
  // now + duration past 2^64 must not wrap to a time near the epoch.
  EXPECT_THROW(parse_time("+" + almost_max_duration(), 1000), UsageError);
}

TEST(TimespecParseTime, NowAndRelative) {
  const std::uint64_t now = 1'700'000'000'123;
  EXPECT_EQ(parse_time("now", now), now);
  EXPECT_EQ(parse_time("+30m", now), now + 30 * kM);
  EXPECT_EQ(parse_time("+1h30m", now), now + 90 * kM);
  EXPECT_EQ(parse_time("+2d", now), now + 2 * kD);
  for (const char* bad : {"+", "+-5m", "+5", "++5m", "-30m", "Now", "now ", "+ 5m"}) {
    SCOPED_TRACE(bad);
    EXPECT_THROW(parse_time(bad, now), UsageError);
  }
}

TEST(TimespecParseTime, IsoWithExplicitOffsets) {
  const std::uint64_t now = 1;  // must not matter for absolute times
  EXPECT_EQ(parse_time("2026-11-21T18:30Z", now), k1830Z);
  EXPECT_EQ(parse_time("2026-11-21T18:30:00Z", now), k1830Z);
  EXPECT_EQ(parse_time("2026-11-21T18:30z", now), k1830Z);
  EXPECT_EQ(parse_time("2026-11-21 18:30Z", now), k1830Z);
  EXPECT_EQ(parse_time("2026-11-21T18:30+01:00", now), k1730Z);
  EXPECT_EQ(parse_time("2026-11-21T18:30+0100", now), k1730Z);
  EXPECT_EQ(parse_time("2026-11-21T18:30-0530", now), kNext0000Z);
  EXPECT_EQ(parse_time("2026-11-21T18:30-05:30", now), kNext0000Z);
  EXPECT_EQ(parse_time("2026-11-21T18:30+05", now), k1330Z);
  EXPECT_EQ(parse_time("2026-11-21T19:00+05:30", now), k1330Z);
  EXPECT_EQ(parse_time("2026-11-21T18:30+00:00", now), k1830Z);
  EXPECT_EQ(parse_time("2028-02-29T10:00Z", now), kLeap1000Z);
  EXPECT_EQ(parse_time("1970-01-01T00:00Z", now), 0u);
}

TEST(TimespecParseTime, FractionalSecondsKeepMilliseconds) {
  EXPECT_EQ(parse_time("2026-11-21T18:30:15Z", 0), k1830Z + 15 * kS);
  EXPECT_EQ(parse_time("2026-11-21T18:30:15.123Z", 0), k1830Z + 15 * kS + 123);
  EXPECT_EQ(parse_time("2026-11-21T18:30:15.5Z", 0), k1830Z + 15 * kS + 500);
  EXPECT_EQ(parse_time("2026-11-21T18:30:15.05+01:00", 0), k1730Z + 15 * kS + 50);
  EXPECT_EQ(parse_time("2026-11-21T18:30:15.123999Z", 0), k1830Z + 15 * kS + 123) << "finer digits are dropped";
}

TEST_F(TimespecTz, IsoWithoutOffsetIsLocalTime) {
  use("UTC");
  EXPECT_EQ(parse_time("2026-11-21T18:30", 0), k1830Z);
  EXPECT_EQ(parse_time("2026-11-21 18:30:00", 0), k1830Z);
  use("Europe/Berlin");
  EXPECT_EQ(parse_time("2026-11-21T18:30", 0), k1730Z) << "November in Berlin is +01:00";
  EXPECT_EQ(parse_time("2026-07-01T12:00", 0), kJuly1000Z) << "July in Berlin is +02:00";
  EXPECT_EQ(parse_time("2026-11-21T18:30:00.250", 0), k1730Z + 250);
  // An explicit offset ignores TZ.
  EXPECT_EQ(parse_time("2026-11-21T18:30Z", 0), k1830Z);
  use("Asia/Kolkata");
  EXPECT_EQ(parse_time("2026-11-21T19:00", 0), k1330Z);
}

TEST(TimespecParseTime, RejectsImpossibleDatesAndTimes) {
  for (const char* bad : {"2026-02-30T10:00Z", "2026-02-29T10:00Z", "2026-04-31T10:00Z", "2026-13-01T10:00Z",
                          "2026-00-10T10:00Z", "2026-11-00T10:00Z", "2026-11-21T25:00Z", "2026-11-21T24:00Z",
                          "2026-11-21T12:60Z", "2026-11-21T12:00:61Z", "2026-11-21T18:30+15:00",
                          "2026-11-21T18:30+01:60", "1969-12-31T23:59Z", "1970-01-01T00:30+01:00"}) {
    SCOPED_TRACE(bad);
    EXPECT_THROW(parse_time(bad, 0), UsageError);
  }
}

TEST(TimespecParseTime, RejectsGarbage) {
  for (const char* bad : {"", "tomorrow", "2026", "2026-11-21", "2026-11-21T18", "2026-11-21T18:3", "2026-11-21T1830Z",
                          "2026/11/21T18:30Z", "2026-11-21X18:30Z", "26-11-21T18:30Z", "2026-1-21T18:30Z",
                          "2026-11-21T18:30:00.Z", "2026-11-21T18:30Zjunk", "2026-11-21T18:30+1",
                          "2026-11-21T18:30+01:0", "2026-11-21T18:30+013",
                          "2026-11-21T18:30+01:00x", "2026-11-21T18:30:5Z", "2026-11-21T1a:30Z", "\x01\xff"}) {
    SCOPED_TRACE(bad);
    EXPECT_THROW(parse_time(bad, 0), UsageError);
  }
}

TEST(TimespecParseTime, ErrorMessageNamesTheInputAndTheForms) {
  try {
    parse_time("next tuesday", 0);
    FAIL();
  } catch (const UsageError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("'next tuesday'"), std::string::npos) << m;
    EXPECT_NE(m.find("+30m"), std::string::npos) << m;
  }
}

TEST_F(TimespecTz, FormatLocalHonoursTz) {
  use("Asia/Kolkata");
  EXPECT_EQ(format_local(k1300Z), "2026-11-21 18:30 +05:30");
  use("UTC");
  EXPECT_EQ(format_local(k1300Z), "2026-11-21 13:00 +00:00");
  use("Europe/Berlin");
  EXPECT_EQ(format_local(k1300Z), "2026-11-21 14:00 +01:00");
  EXPECT_EQ(format_local(kJuly1000Z), "2026-07-01 12:00 +02:00");
  use("America/St_Johns");  // a negative offset with minutes: -03:30 in November
  EXPECT_EQ(format_local(k1300Z), "2026-11-21 09:30 -03:30");
  use("America/New_York");
  EXPECT_EQ(format_local(kNext0000Z), "2026-11-21 19:00 -05:00");
}

TEST_F(TimespecTz, FormatLocalAgreesWithParseTimeWithoutOffset) {
  use("Europe/Berlin");
  const std::uint64_t t = parse_time("2026-11-21T18:30", 0);
  EXPECT_EQ(format_local(t), "2026-11-21 18:30 +01:00");
}

TEST(TimespecFormat, Utc) {
  EXPECT_EQ(format_utc(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(format_utc(k1830Z), "2026-11-21T18:30:00Z");
  EXPECT_EQ(format_utc(k1830Z + 15 * kS + 999), "2026-11-21T18:30:15Z");
  EXPECT_EQ(format_utc(kLeap1000Z), "2028-02-29T10:00:00Z");
  EXPECT_EQ(parse_time(format_utc(kJuly1000Z + 42 * kS), 0), kJuly1000Z + 42 * kS);
}

TEST(TimespecFormat, Duration) {
  EXPECT_EQ(format_duration(90 * kM), "1h30m");
  EXPECT_EQ(format_duration(45 * kS), "45s");
  EXPECT_EQ(format_duration(2 * kD + 3 * kH), "2d3h");
  EXPECT_EQ(format_duration(kD + 4 * kS), "1d4s");
  EXPECT_EQ(format_duration(kH), "1h");
  EXPECT_FALSE(format_duration(0).empty());
  EXPECT_FALSE(format_duration(250).empty());
}

TEST(TimespecFormat, DurationRoundTripsThroughParse) {
  for (std::uint64_t ms : {kS, 59 * kS, kM, 61 * kS, kH + kS, 25 * kH, 3 * kD + 4 * kH + 5 * kM + 6 * kS,
                           400 * kD}) {
    SCOPED_TRACE(ms);
    EXPECT_EQ(parse_duration(format_duration(ms)), ms) << format_duration(ms);
  }
}

TEST(TimespecNow, IsTheWallClock) {
  const auto before = static_cast<std::uint64_t>(std::time(nullptr)) * 1000;
  const std::uint64_t n = now_ms();
  EXPECT_GE(n + 1000, before);
  EXPECT_LE(n, before + 2000);
}

}  // namespace
}  // namespace p2p::timespec
