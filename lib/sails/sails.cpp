// sails: route prefixes, header parsing, unit replies and the text of panic replies.
#include "sails/sails.hpp"

#include <algorithm>

namespace p2p::sails {

namespace {

constexpr std::string_view kPanicPrefix = "panicked with '";
constexpr std::string_view kLocationSep = "' at '";
constexpr std::string_view kNoReason = "(no reason given)";

// Length of the well-formed UTF-8 sequence at s[i], or 0 if malformed (overlong,
// surrogate, past U+10FFFF or cut short): the same rules as the SCALE string decoder.
std::size_t utf8_len(ByteView s, std::size_t i) {
  std::uint8_t b = s[i];
  if (b < 0x80) return 1;
  std::size_t len = 0;
  std::uint8_t lo = 0x80, hi = 0xbf;  // allowed range of the second byte
  if (b >= 0xc2 && b <= 0xdf) {
    len = 2;
  } else if (b >= 0xe0 && b <= 0xef) {
    len = 3;
    lo = b == 0xe0 ? 0xa0 : lo;
    hi = b == 0xed ? 0x9f : hi;
  } else if (b >= 0xf0 && b <= 0xf4) {
    len = 4;
    lo = b == 0xf0 ? 0x90 : lo;
    hi = b == 0xf4 ? 0x8f : hi;
  } else {
    return 0;
  }
  if (s.size() - i < len || s[i + 1] < lo || s[i + 1] > hi) return 0;
  for (std::size_t k = 2; k < len; ++k)
    if ((s[i + k] & 0xc0) != 0x80) return 0;
  return len;
}

// C0 controls, DEL and C1 controls (U+0080..U+009F, bytes C2 80..C2 9F): terminals may obey them.
bool is_control(ByteView ch) {
  if (ch.size() == 1) return ch[0] < 0x20 || ch[0] == 0x7f;
  return ch.size() == 2 && ch[0] == 0xc2 && ch[1] < 0xa0;
}

// The bytes as text, each control character or malformed byte replaced by one '?'.
std::string printable(ByteView s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    std::size_t n = utf8_len(s, i);
    ByteView ch = s.subspan(i, n == 0 ? 1 : n);
    if (n == 0 || is_control(ch))
      out += '?';
    else
      out.append(reinterpret_cast<const char*>(ch.data()), ch.size());
    i += ch.size();
  }
  return out;
}

// <msg> from "panicked with '<msg>'" or "panicked with '<msg>' at '<loc>'"; nullopt otherwise.
std::optional<std::string_view> panic_body(std::string_view text) {
  if (!text.starts_with(kPanicPrefix) || text.size() < kPanicPrefix.size() + 1 || !text.ends_with('\''))
    return std::nullopt;
  std::string_view inner = text.substr(kPanicPrefix.size(), text.size() - kPanicPrefix.size() - 1);
  // The location is the part after the last "' at '"; the message may hold quotes of its own.
  auto at = inner.rfind(kLocationSep);
  if (at != std::string_view::npos) inner = inner.substr(0, at);
  return inner;
}

}  // namespace

Bytes route(std::string_view service, std::string_view method) {
  scale::Encoder e;
  e.str(service);
  e.str(method);
  return std::move(e).take();
}

Header read_header(ByteView payload) {
  scale::Decoder d(payload);
  Header h;
  h.service = d.str();
  h.method = d.str();
  h.args_offset = d.position();
  return h;
}

bool is_unit_reply(ByteView payload, std::string_view service, std::string_view method) {
  if (payload.empty()) return true;
  Bytes prefix = route(service, method);
  return std::equal(payload.begin(), payload.end(), prefix.begin(), prefix.end());
}

std::string panic_message(ByteView error_payload) {
  if (error_payload.empty()) return std::string(kNoReason);
  std::string_view text(reinterpret_cast<const char*>(error_payload.data()), error_payload.size());
  auto body = panic_body(text);
  if (!body) return printable(error_payload);
  if (body->empty()) return std::string(kNoReason);
  return printable(view(*body));
}

Bytes panic_payload(std::string_view message) {
  std::string text;
  text.reserve(kPanicPrefix.size() + message.size() + 1);
  text.append(kPanicPrefix).append(message).append("'");
  Bytes out(text.begin(), text.end());
  return out;
}

}  // namespace p2p::sails
