// signal/relay_scan: a strict JSON scanner for the relay events' plain subset (see the header).
#include "signal/relay_scan.hpp"

#include <array>
#include <cstdint>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace p2p::signal {
namespace {

struct Val {
  enum Type { string, number, object, array, literal } type = literal;
  std::string_view raw;    // the value's whole text
  std::string_view inner;  // string: its characters between the quotes
  bool escaped = false;    // string: contains a backslash escape
  bool is_unsigned = false;  // number: a plain non-negative integer of at most 19 digits
  bool is_null = false;
};

struct Member {
  std::string_view key;
  Val value;
};

// A validating scanner over one JSON text. Fails (returns false) on anything outside the
// subset: bad JSON, non-ASCII or control bytes, \u escapes, escaped keys, too deep, too many
// members to record.
// True when none of the 8 bytes at p ends or escapes a string or is outside printable ASCII:
// no '"', no '\\', nothing below 0x20 or above 0x7f. The zero-byte tests only ever report a
// byte that really matches, so a false here just means "look byte by byte".
bool plain8(const char* p) {
  constexpr std::uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
  std::uint64_t x;
  std::memcpy(&x, p, 8);
  const std::uint64_t quote = x ^ (ones * '"'), slash = x ^ (ones * '\\');
  const std::uint64_t found = ((quote - ones) & ~quote) | ((slash - ones) & ~slash) | ((x - ones * 0x20) & ~x) | x;
  return (found & highs) == 0;
}

// How many bytes from p (of n) are plain, as plain8 means it: up to the first '"', '\\', byte
// below 0x20 or above 0x7f. Sixteen at a time where SSE2 is there (every x86-64): one signed
// compare against 0x20 finds both the control bytes and the non-ASCII ones, which are negative.
std::size_t plain_run(const char* p, std::size_t n) {
  std::size_t i = 0;
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"'), slash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(0x20);
  for (; i + 16 <= n; i += 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    const __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, slash)), _mm_cmplt_epi8(x, space));
    if (const int mask = _mm_movemask_epi8(hit)) return i + static_cast<std::size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
  }
#endif
  while (i + 8 <= n && plain8(p + i)) i += 8;
  return i;
}

class Scanner {
 public:
  Scanner(std::string_view text, int max_depth) : t_(text), max_depth_(max_depth) {}

  bool value(Val& v, int depth) {
    ws();
    if (i_ >= t_.size()) return false;
    const std::size_t start = i_;
    bool ok;
    switch (t_[i_]) {
      case '"':
        v.type = Val::string;
        ok = string(v.inner, v.escaped);
        break;
      case '{': {
        v.type = Val::object;
        std::size_t count = 0;
        ok = object(depth, nullptr, 0, count);
        break;
      }
      case '[':
        v.type = Val::array;
        ok = array(depth, nullptr, 0, nullptr);
        break;
      case 't':
        v.type = Val::literal;
        ok = word("true");
        break;
      case 'f':
        v.type = Val::literal;
        ok = word("false");
        break;
      case 'n':
        v.type = Val::literal;
        v.is_null = true;
        ok = word("null");
        break;
      default:
        v.type = Val::number;
        ok = number(v.is_unsigned);
    }
    v.raw = t_.substr(start, i_ - start);
    return ok;
  }

  // The object at the cursor; records up to cap members into out (more is a failure).
  bool object(int depth, Member* out, std::size_t cap, std::size_t& count) {
    if (depth > max_depth_ || t_[i_] != '{') return false;
    ++i_;
    ws();
    if (peek('}')) return true;
    while (true) {
      ws();
      std::string_view key;
      bool escaped = false;
      if (!peek_is('"') || !string(key, escaped) || escaped) return false;
      ws();
      if (!peek(':')) return false;
      Val v;
      if (!value(v, depth + 1)) return false;
      if (out) {
        if (count == cap) return false;
        out[count] = Member{key, v};
      }
      ++count;
      ws();
      if (peek(',')) continue;
      return peek('}');
    }
  }

  bool array(int depth, Val* out, std::size_t cap, std::size_t* count) {
    if (depth > max_depth_ || t_[i_] != '[') return false;
    ++i_;
    ws();
    if (peek(']')) return true;
    std::size_t n = 0;
    while (true) {
      Val v;
      if (!value(v, depth + 1)) return false;
      if (out) {
        if (n == cap) return false;
        out[n] = v;
      }
      ++n;
      if (count) *count = n;
      ws();
      if (peek(',')) continue;
      return peek(']');
    }
  }

  bool at_end() {
    ws();
    return i_ == t_.size();
  }

  // Skips white space and takes c if it is next.
  bool expect(char c) {
    ws();
    return peek(c);
  }

  // The object at the cursor (after white space), recording its members and its whole text.
  bool object_here(int depth, Member* out, std::size_t cap, std::size_t& count, std::string_view& raw) {
    ws();
    if (!peek_is('{')) return false;
    const std::size_t start = i_;
    if (!object(depth, out, cap, count)) return false;
    raw = t_.substr(start, i_ - start);
    return true;
  }

 private:
  void ws() {
    while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\t' || t_[i_] == '\n' || t_[i_] == '\r')) ++i_;
  }
  bool peek(char c) {
    if (i_ < t_.size() && t_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool peek_is(char c) const { return i_ < t_.size() && t_[i_] == c; }

  bool string(std::string_view& inner, bool& escaped) {
    ++i_;  // the opening quote
    const std::size_t start = i_;
    while (i_ < t_.size()) {
      // Many plain bytes at a time: strings are most of a relay packet, and byte by byte this
      // loop was the largest user-space cost of relaying one.
      i_ += plain_run(t_.data() + i_, t_.size() - i_);
      if (i_ >= t_.size()) break;
      const auto c = static_cast<unsigned char>(t_[i_]);
      if (c == '"') {
        inner = t_.substr(start, i_ - start);
        ++i_;
        return true;
      }
      if (c < 0x20 || c >= 0x80) return false;  // control bytes are invalid; non-ASCII takes the full path
      if (c == '\\') {
        if (i_ + 1 >= t_.size()) return false;
        const char e = t_[i_ + 1];
        if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' && e != 'r' && e != 't') return false;
        escaped = true;
        i_ += 2;
        continue;
      }
      ++i_;
    }
    return false;
  }

  bool digits() {
    const std::size_t start = i_;
    while (i_ < t_.size() && t_[i_] >= '0' && t_[i_] <= '9') ++i_;
    return i_ > start;
  }

  bool number(bool& is_unsigned) {
    const std::size_t start = i_;
    bool plain = true;
    if (peek('-')) plain = false;
    if (peek_is('0')) {
      ++i_;
    } else if (!digits()) {
      return false;
    }
    if (peek('.')) {
      plain = false;
      if (!digits()) return false;
    }
    if (peek_is('e') || peek_is('E')) {
      plain = false;
      ++i_;
      if (!peek('+')) peek('-');
      if (!digits()) return false;
    }
    is_unsigned = plain && i_ - start <= 19;
    return true;
  }

  bool word(std::string_view w) {
    if (t_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }

  std::string_view t_;
  int max_depth_;
  std::size_t i_ = 0;
};

constexpr std::size_t kMaxMembers = 16;

bool unique_keys(const std::array<Member, kMaxMembers>& m, std::size_t n) {
  for (std::size_t a = 0; a < n; ++a)
    for (std::size_t b = a + 1; b < n; ++b)
      if (m[a].key == m[b].key) return false;
  return true;
}

// The members of an object already validated; false when there are too many or a key repeats.
bool members(const Val& obj, int depth, int max_depth, std::array<Member, kMaxMembers>& out, std::size_t& n) {
  Scanner s(obj.raw, max_depth);
  n = 0;
  return s.object(depth, out.data(), out.size(), n) && unique_keys(out, n);
}

const Val* find(const std::array<Member, kMaxMembers>& m, std::size_t n, std::string_view key) {
  for (std::size_t k = 0; k < n; ++k)
    if (m[k].key == key) return &m[k].value;
  return nullptr;
}

// A required string field as the full path checks it: present, a string, 1..max bytes. The
// fast path also wants it unescaped, so it can be used as is.
bool plain_string(const Val* v, std::size_t max, std::string_view& out) {
  if (!v || v->type != Val::string || v->escaped || v->inner.empty() || v->inner.size() > max) return false;
  out = v->inner;
  return true;
}

bool description_ok(const Val* d, int max_depth) {
  if (!d || d->type != Val::object) return false;
  std::array<Member, kMaxMembers> m;
  std::size_t n;
  if (!members(*d, 3, max_depth, m, n)) return false;
  const Val* type = find(m, n, "type");
  const Val* sdp = find(m, n, "sdp");
  return type && type->type == Val::string && sdp && sdp->type == Val::string;
}

bool candidate_ok(const Val* c, int max_depth) {
  if (!c || c->type != Val::object) return false;
  std::array<Member, kMaxMembers> m;
  std::size_t n;
  if (!members(*c, 3, max_depth, m, n)) return false;
  const Val* cand = find(m, n, "candidate");
  const Val* mid = find(m, n, "sdpMid");
  const Val* line = find(m, n, "sdpMLineIndex");
  if (!cand || cand->type != Val::string) return false;
  if (mid && !mid->is_null && mid->type != Val::string) return false;
  if (line && !line->is_null && !(line->type == Val::number && line->is_unsigned)) return false;
  return true;
}

}  // namespace

std::optional<RelayScan> scan_relay(std::string_view sio_text, const ProtocolLimits& limits, int max_depth) {
  // EVENT, root namespace, no ack id: "2[" straight away.
  if (sio_text.size() < 4 || sio_text[0] != '2' || sio_text[1] != '[') return std::nullopt;
  // [name, first, {payload}] in one pass: the payload's members are recorded as it is
  // validated, not found by scanning it again (scanning was the largest user-space cost of a
  // relay). Depths as the generic array/object walk counts them: the array 1, its elements 2.
  Scanner top(sio_text.substr(1), max_depth);
  Val name, first;
  std::array<Member, kMaxMembers> m;
  std::size_t n = 0;
  RelayScan r;
  if (max_depth < 1 || !top.expect('[') || !top.value(name, 2) || !top.expect(',') || !top.value(first, 2) ||
      !top.expect(',') || !top.object_here(2, m.data(), m.size(), n, r.payload) || !top.expect(']') || !top.at_end() ||
      !unique_keys(m, n))
    return std::nullopt;

  if (name.type != Val::string || name.escaped) return std::nullopt;
  if (name.inner == "offer") r.kind = RelayScan::Kind::offer;
  else if (name.inner == "answer") r.kind = RelayScan::Kind::answer;
  else if (name.inner == "candidate") r.kind = RelayScan::Kind::candidate;
  else return std::nullopt;
  if (!plain_string(&first, limits.max_id, r.first)) return std::nullopt;
  if (!plain_string(find(m, n, "streamId"), limits.max_stream_id, r.stream_id) ||
      !plain_string(find(m, n, "userId"), limits.max_id, r.user_id))
    return std::nullopt;
  if (r.kind == RelayScan::Kind::candidate) {
    const Val* c = find(m, n, "candidate");
    if (!candidate_ok(c, max_depth)) return std::nullopt;
    r.candidate = c->raw;
  } else if (!description_ok(find(m, n, "description"), max_depth)) {
    return std::nullopt;
  }
  return r;
}

}  // namespace p2p::signal
