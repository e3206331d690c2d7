// timespec: the times and durations users type (`now`, `+30m`, ISO-8601) and
// how times print. Pure apart from reading the local time zone (TZ).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace p2p::timespec {

// A duration such as "45s", "30m", "1h", "1h30m", "2d"; at least one unit, no sign.
// Returns milliseconds. Throws UsageError naming the input otherwise.
std::uint64_t parse_duration(std::string_view text);

// A point in time, in ms since the Unix epoch:
//   "now"; "+<duration>" (from now); ISO-8601 "YYYY-MM-DDTHH:MM[:SS[.fff]](Z|±HH:MM|±HHMM)";
//   the same without an offset (or with a space for 'T') is read in the local time zone.
std::uint64_t parse_time(std::string_view text, std::uint64_t now_ms);

// "2026-11-21 18:30 +01:00" in the local time zone (TZ honoured).
std::string format_local(std::uint64_t ms);
// "2026-11-21T17:30:00Z"
std::string format_utc(std::uint64_t ms);
// "1h30m", "45s", "2d3h"
std::string format_duration(std::uint64_t ms);

std::uint64_t now_ms();

}  // namespace p2p::timespec
