// media/options: parsing and validation of the broadcast/watch flags.
#include "media/options.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>

#include "util/error.hpp"

namespace p2p::media {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool parse_unsigned(std::string_view s, unsigned& out) {
  if (s.empty() || s.size() > 9) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// host:port with a non-empty host and a port in 1..65535.
bool valid_host_port(std::string_view hp) {
  auto colon = hp.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  unsigned port = 0;
  return parse_unsigned(hp.substr(colon + 1), port) && port >= 1 && port <= 65535;
}

std::string strip_quotes(std::string_view s) {
  if (s.size() >= 2 && ((s.front() == '\'' && s.back() == '\'') || (s.front() == '"' && s.back() == '"'))) {
    s = s.substr(1, s.size() - 2);
  }
  return std::string(s);
}

}  // namespace

VideoCodec parse_video_codec(std::string_view text) {
  std::string t = lower(text);
  if (t == "vp8") return VideoCodec::vp8;
  if (t == "h264" || t == "h.264" || t == "avc") return VideoCodec::h264;
  throw UsageError("--video must be vp8 or h264, not '" + std::string(text) + "'");
}

const char* to_string(VideoCodec codec) { return codec == VideoCodec::vp8 ? "vp8" : "h264"; }

FrameSize parse_size(std::string_view text) {
  auto x = lower(text).find('x');
  FrameSize fs;
  if (x == std::string::npos || !parse_unsigned(text.substr(0, x), fs.width) ||
      !parse_unsigned(text.substr(x + 1), fs.height)) {
    throw UsageError("--size must look like 640x480, not '" + std::string(text) + "'");
  }
  if (fs.width < 16 || fs.height < 16 || fs.width > 4096 || fs.height > 4096 || fs.width % 2 != 0 ||
      fs.height % 2 != 0) {
    throw UsageError("--size needs even width and height between 16 and 4096, not '" +
                     std::string(text) + "'");
  }
  return fs;
}

unsigned parse_bitrate_kbps(std::string_view text) {
  std::string t = lower(text);
  double scale = 1;  // a bare number is kbit/s
  if (!t.empty() && (t.back() == 'k' || t.back() == 'm')) {
    scale = t.back() == 'm' ? 1000 : 1;
    t.pop_back();
  }
  double value = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
  if (t.empty() || ec != std::errc() || p != t.data() + t.size() || !(value > 0)) {
    throw UsageError("--bitrate must look like 1500k, 2M or 2.5M, not '" + std::string(text) + "'");
  }
  double kbps = value * scale;
  if (kbps < 50 || kbps > 50000) throw UsageError("--bitrate must be between 50k and 50M, not '" + std::string(text) + "'");
  return static_cast<unsigned>(kbps + 0.5);
}

SourceSpec parse_source(std::string_view text) {
  if (text == "test") return {SourceSpec::Kind::test, {}};
  struct Prefix {
    std::string_view name;
    SourceSpec::Kind kind;
  };
  static constexpr Prefix prefixes[] = {{"file:", SourceSpec::Kind::file},
                                        {"v4l2:", SourceSpec::Kind::v4l2},
                                        {"uri:", SourceSpec::Kind::uri},
                                        {"pipeline:", SourceSpec::Kind::pipeline}};
  for (const auto& p : prefixes) {
    if (!starts_with(text, p.name)) continue;
    std::string arg = strip_quotes(text.substr(p.name.size()));
    if (arg.empty()) throw UsageError("--source " + std::string(p.name) + " needs a value after the colon");
    return {p.kind, arg};
  }
  throw UsageError("--source must be test, file:PATH, v4l2:/dev/videoN, uri:URL or pipeline:'...', not '" +
                   std::string(text) + "'");
}

void validate_ice(const IceOptions& ice) {
  if (!ice.stun.empty()) {
    if (!starts_with(ice.stun, "stun://") || !valid_host_port(std::string_view(ice.stun).substr(7))) {
      throw UsageError("--stun must look like stun://host:port, not '" + ice.stun + "'");
    }
  }
  for (const auto& t : ice.turn) {
    std::string_view v(t);
    std::size_t scheme = starts_with(v, "turn://") ? 7 : starts_with(v, "turns://") ? 8 : 0;
    auto at = v.rfind('@');
    if (scheme == 0 || at == std::string_view::npos || at <= scheme ||
        v.substr(scheme, at - scheme).find(':') == std::string_view::npos ||
        !valid_host_port(v.substr(at + 1))) {
      throw UsageError("--turn must look like turn://user:password@host:port, not '" + t + "'");
    }
  }
}

void BroadcastOptions::validate() const {
  SourceSpec src = parse_source(source);
  if (src.kind == SourceSpec::Kind::file && !std::filesystem::is_regular_file(src.arg)) {
    throw UsageError("--source file:" + src.arg + ": no such file");
  }
  if (src.kind == SourceSpec::Kind::v4l2 && !starts_with(src.arg, "/dev/")) {
    throw UsageError("--source v4l2: needs a device path such as /dev/video0");
  }
  if (bitrate_kbps < 50 || bitrate_kbps > 50000) {
    throw UsageError("--bitrate must be between 50 and 50000 kbit/s");
  }
  if (min_bitrate_kbps == 0 || min_bitrate_kbps > bitrate_kbps) {
    throw UsageError("the minimum bitrate must be between 1 and --bitrate");
  }
  if (fps < 1 || fps > 120) throw UsageError("--fps must be between 1 and 120");
  parse_size(std::to_string(size.width) + "x" + std::to_string(size.height));
  if (keyframe_interval_s < 1 || keyframe_interval_s > 60) {
    throw UsageError("the keyframe interval must be between 1 and 60 s");
  }
  if (stats_interval_ms < 100) throw UsageError("the stats interval must be at least 100 ms");
  if (!(simulate_loss >= 0 && simulate_loss <= 0.5)) throw UsageError("the simulated loss must be between 0 and 0.5");
  if (max_direct > 100000) throw UsageError("--max-direct must be between 0 and 100000");
  validate_ice(ice);
}

WatchSink choose_sink(bool output, bool display, bool ascii, bool null_sink) {
  int n = int(output) + int(display) + int(ascii) + int(null_sink);
  if (n > 1) throw UsageError("choose only one of --output, --display, --ascii and --null");
  if (output) return WatchSink::record;
  if (display) return WatchSink::display;
  if (ascii) return WatchSink::ascii;
  return WatchSink::null;
}

void WatchOptions::validate() const {
  if (sink == WatchSink::record) {
    if (output.empty()) throw UsageError("--output needs a file name (.mkv or .webm)");
    auto parent = std::filesystem::path(output).parent_path();
    if (!parent.empty() && !std::filesystem::is_directory(parent)) {
      throw UsageError("--output " + output + ": directory " + parent.string() + " does not exist");
    }
  }
  if (latency_ms > 10000) throw UsageError("--latency must be between 0 and 10000 ms");
  if (stats_interval_ms < 100) throw UsageError("the stats interval must be at least 100 ms");
  if (relay_slots > 8) throw UsageError("--relay must be between 0 and 8");
  validate_ice(ice);
}

}  // namespace p2p::media
