// metadata/value: the generic SCALE walk over the type registry, in both directions, and System.Events on
// top of it. Reading is bounded by a nesting depth and a budget of values, so hostile input cannot make it
// recurse or allocate without limit.
#include <algorithm>
#include <limits>
#include <string>

#include "metadata/metadata.hpp"

namespace p2p::metadata {

namespace {

using scale::DecodeError;

constexpr int kMaxDepth = 256;
constexpr std::uint64_t kBaseBudget = 65536;  // values allowed on top of 16 per input byte

bool is_option(const Type& t) { return t.path.size() == 1 && t.path[0] == "Option"; }

bool all_named(const std::vector<Field>& fs) {
  return !fs.empty() && std::all_of(fs.begin(), fs.end(), [](const Field& f) { return f.name.has_value(); });
}

bool is_u8(const Metadata& m, TypeId id) {
  const Primitive* p = m.type(id).as<Primitive>();
  return p && *p == Primitive::U8;
}

struct IntKind {
  std::size_t width;  // bytes
  bool is_signed;
};

std::optional<IntKind> int_kind(Primitive p) {
  switch (p) {
    case Primitive::U8: return IntKind{1, false};
    case Primitive::U16: return IntKind{2, false};
    case Primitive::U32: return IntKind{4, false};
    case Primitive::U64: return IntKind{8, false};
    case Primitive::U128: return IntKind{16, false};
    case Primitive::U256: return IntKind{32, false};
    case Primitive::I8: return IntKind{1, true};
    case Primitive::I16: return IntKind{2, true};
    case Primitive::I32: return IntKind{4, true};
    case Primitive::I64: return IntKind{8, true};
    case Primitive::I128: return IntKind{16, true};
    case Primitive::I256: return IntKind{32, true};
    default: return std::nullopt;
  }
}

// The unsigned integer a Compact<T> carries: T itself, or T's single field (CompactAs newtypes such as Perbill).
std::optional<IntKind> compact_target(const Metadata& m, TypeId id) {
  for (int hop = 0; hop < 16; ++hop) {
    const Type& t = m.type(id);
    if (const Primitive* p = t.as<Primitive>()) {
      auto k = int_kind(*p);
      if (k && !k->is_signed && k->width <= 16) return k;
      return std::nullopt;
    }
    if (const Composite* c = t.as<Composite>(); c && c->fields.size() == 1) {
      id = c->fields[0].type;
    } else if (const Tuple* tu = t.as<Tuple>(); tu && tu->elements.size() == 1) {
      id = tu->elements[0];
    } else {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

scale::u128 max_of(std::size_t width) {
  return width >= 16 ? ~scale::u128{0} : (scale::u128{1} << (8 * width)) - 1;
}

// ---- big integers as decimal text ----

void negate(Bytes& le) {
  unsigned carry = 1;
  for (auto& x : le) {
    unsigned v = static_cast<std::uint8_t>(~x) + carry;
    x = static_cast<std::uint8_t>(v & 0xff);
    carry = v >> 8;
  }
}

bool is_zero(const Bytes& le) {
  return std::all_of(le.begin(), le.end(), [](std::uint8_t b) { return b == 0; });
}

std::string decimal(ByteView le, bool is_signed) {
  Bytes mag(le.begin(), le.end());
  bool neg = is_signed && !mag.empty() && (mag.back() & 0x80);
  if (neg) negate(mag);
  std::string digits;
  while (!is_zero(mag)) {
    unsigned rem = 0;
    for (std::size_t i = mag.size(); i-- > 0;) {
      unsigned cur = rem * 256 + mag[i];
      mag[i] = static_cast<std::uint8_t>(cur / 10);
      rem = cur % 10;
    }
    digits.push_back(static_cast<char>('0' + rem));
  }
  if (digits.empty()) digits = "0";
  if (neg) digits.push_back('-');
  std::reverse(digits.begin(), digits.end());
  return digits;
}

std::string decimal(scale::u128 v) {
  Bytes le(16);
  for (auto& b : le) {
    b = static_cast<std::uint8_t>(v & 0xff);
    v >>= 8;
  }
  return decimal(le, false);
}

// "-?[0-9]+" as `width` bytes of little-endian two's complement; nullopt when malformed or out of range.
std::optional<Bytes> from_decimal(std::string_view s, IntKind k) {
  bool neg = !s.empty() && s[0] == '-';
  if (neg) s.remove_prefix(1);
  if (s.empty() || s.size() > 100) return std::nullopt;
  Bytes mag(k.width, 0);
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    unsigned carry = static_cast<unsigned>(c - '0');
    for (auto& x : mag) {
      unsigned v = x * 10u + carry;
      x = static_cast<std::uint8_t>(v & 0xff);
      carry = v >> 8;
    }
    if (carry) return std::nullopt;
  }
  if (is_zero(mag)) return mag;
  if (neg && !k.is_signed) return std::nullopt;
  if (k.is_signed && (mag.back() & 0x80)) {
    // Only -2^(bits-1) has the top bit set in magnitude.
    bool min_value = neg && mag.back() == 0x80 && std::all_of(mag.begin(), mag.end() - 1, [](auto b) { return b == 0; });
    if (!min_value) return std::nullopt;
  }
  if (neg) negate(mag);
  return mag;
}

// ---- UTF-8 for char and str ----

// Decodes the code point at s[i], advancing i; nullopt when the bytes are not well-formed UTF-8.
std::optional<std::uint32_t> next_code_point(std::string_view s, std::size_t& i) {
  auto b = [&](std::size_t k) { return static_cast<std::uint8_t>(s[k]); };
  std::uint8_t b0 = b(i);
  std::size_t len = b0 < 0x80 ? 1 : b0 >= 0xc2 && b0 <= 0xdf ? 2 : b0 >= 0xe0 && b0 <= 0xef ? 3
                  : b0 >= 0xf0 && b0 <= 0xf4 ? 4 : 0;
  if (len == 0 || s.size() - i < len) return std::nullopt;
  std::uint32_t cp = len == 1 ? b0 : b0 & (0x7f >> len);
  for (std::size_t k = 1; k < len; ++k) {
    if ((b(i + k) & 0xc0) != 0x80) return std::nullopt;
    cp = (cp << 6) | (b(i + k) & 0x3f);
  }
  static constexpr std::uint32_t kMinForLen[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMinForLen[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return std::nullopt;
  i += len;
  return cp;
}

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();)
    if (!next_code_point(s, i)) return false;
  return true;
}

std::string utf8(std::uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
  return out;
}

// A value for an error message: never throws on invalid UTF-8 and stays short.
std::string show(const Value& v) {
  std::string s = v.dump(-1, ' ', false, Value::error_handler_t::replace);
  return s.size() > 120 ? s.substr(0, 117) + "..." : s;
}

// ---- bit sequences ----

struct BitLayout {
  unsigned word_bits;
  bool lsb_first;
};

std::optional<BitLayout> bit_layout(const Metadata& m, const BitSequence& b) {
  const Primitive* store = m.type(b.store).as<Primitive>();
  auto k = store ? int_kind(*store) : std::nullopt;
  const auto& order = m.type(b.order).path;
  if (!k || k->is_signed || k->width > 8 || order.empty()) return std::nullopt;
  if (order.back() != "Lsb0" && order.back() != "Msb0") return std::nullopt;
  return BitLayout{static_cast<unsigned>(k->width * 8), order.back() == "Lsb0"};
}

unsigned bit_shift(const BitLayout& l, std::uint64_t i) {
  auto b = static_cast<unsigned>(i % l.word_bits);
  return l.lsb_first ? b : l.word_bits - 1 - b;
}

// ---- decoding ----

class Reader {
 public:
  Reader(const Metadata& m, scale::Decoder& d) : m_(m), d_(d), budget_(kBaseBudget + 16 * d.remaining()) {}

  Value read(TypeId id) {
    if (++depth_ > kMaxDepth) throw DecodeError("value nests deeper than " + std::to_string(kMaxDepth) + " levels");
    spend(1);
    const Type& t = m_.type(id);
    Value v = std::visit([&](const auto& def) { return read_def(t, def); }, t.def);
    --depth_;
    return v;
  }

 private:
  void spend(std::uint64_t n) {
    if (n > budget_) throw DecodeError("the value holds more items than its input can justify");
    budget_ -= n;
  }

  // n items of elem must fit in what is left (or in the value budget when elem can be empty).
  void guard_count(std::uint64_t n, TypeId elem) {
    std::uint64_t min = m_.min_encoded_size(elem);
    if (min > 0 ? n > d_.remaining() / min : n > budget_)
      throw DecodeError("length " + std::to_string(n) + " exceeds the input left (" +
                        std::to_string(d_.remaining()) + " bytes)");
  }

  Value read_fields(const std::vector<Field>& fields) {
    if (all_named(fields)) {
      Value obj = Value::object();
      for (const auto& f : fields) obj[*f.name] = read(f.type);
      return obj;
    }
    if (fields.size() == 1) return read(fields[0].type);
    Value arr = Value::array();
    for (const auto& f : fields) arr.push_back(read(f.type));
    return arr;
  }

  Value read_def(const Type&, const Composite& c) { return read_fields(c.fields); }

  Value read_def(const Type& t, const Enum& e) {
    std::uint8_t index = d_.u8();
    auto it = std::find_if(e.variants.begin(), e.variants.end(), [&](const Variant& v) { return v.index == index; });
    if (it == e.variants.end())
      throw DecodeError("variant index " + std::to_string(index) + " is not defined for " + describe(t));
    if (is_option(t)) return it->name == "None" ? Value(nullptr) : read_fields(it->fields);
    if (it->fields.empty()) return it->name;
    Value obj = Value::object();
    obj[it->name] = read_fields(it->fields);
    return obj;
  }

  Value read_def(const Type&, const Sequence& s) {
    std::uint64_t n = d_.compact();
    if (is_u8(m_, s.element)) return hex_of(n);
    guard_count(n, s.element);
    return read_items(n, s.element);
  }

  Value read_def(const Type&, const Array& a) {
    if (is_u8(m_, a.element)) return hex_of(a.len);
    guard_count(a.len, a.element);
    return read_items(a.len, a.element);
  }

  Value read_def(const Type&, const Tuple& t) {
    Value arr = Value::array();
    for (TypeId e : t.elements) arr.push_back(read(e));
    return arr;
  }

  Value read_def(const Type&, Primitive p) {
    switch (p) {
      case Primitive::Bool: return d_.boolean();
      case Primitive::Str: return d_.str();
      case Primitive::Char: {
        std::uint32_t cp = d_.u32();
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
          throw DecodeError("char value " + std::to_string(cp) + " is not a Unicode scalar value");
        return utf8(cp);
      }
      default: break;
    }
    IntKind k = *int_kind(p);
    ByteView raw = d_.raw(k.width);
    if (k.width > 8) return decimal(raw, k.is_signed);
    std::uint64_t u = 0;
    for (std::size_t i = k.width; i-- > 0;) u = (u << 8) | raw[i];
    if (!k.is_signed) return u;
    unsigned shift = static_cast<unsigned>(64 - 8 * k.width);  // sign-extend from the top bit
    return static_cast<std::int64_t>(u << shift) >> shift;
  }

  Value read_def(const Type& t, const Compact& c) {
    auto k = compact_target(m_, c.inner);
    if (!k) throw DecodeError("Compact of a non-integer type is not supported (" + describe(t) + ")");
    scale::u128 v = d_.compact128();
    if (v > max_of(k->width))
      throw DecodeError("compact value does not fit in " + std::to_string(8 * k->width) + " bits");
    if (k->width > 8) return decimal(v);  // the shape follows the type, as for a plain u128
    return static_cast<std::uint64_t>(v);
  }

  Value read_def(const Type& t, const BitSequence& b) {
    auto layout = bit_layout(m_, b);
    if (!layout) throw DecodeError("unsupported bit sequence layout (" + describe(t) + ")");
    std::uint64_t n = d_.compact();
    std::uint64_t words = n / layout->word_bits + (n % layout->word_bits != 0);
    if (words > d_.remaining() / (layout->word_bits / 8)) throw DecodeError("bit sequence length exceeds the input left");
    spend(n);
    Value arr = Value::array();
    std::uint64_t word = 0;
    for (std::uint64_t i = 0; i < n; ++i) {
      if (i % layout->word_bits == 0) word = static_cast<std::uint64_t>(scale_word(layout->word_bits / 8));
      arr.push_back(((word >> bit_shift(*layout, i)) & 1) != 0);
    }
    return arr;
  }

  std::uint64_t scale_word(std::size_t bytes) {
    ByteView raw = d_.raw(bytes);
    std::uint64_t w = 0;
    for (std::size_t i = bytes; i-- > 0;) w = (w << 8) | raw[i];
    return w;
  }

  Value hex_of(std::uint64_t n) {
    if (n > d_.remaining()) throw DecodeError("byte string length " + std::to_string(n) + " exceeds the input left");
    return to_hex(d_.raw(static_cast<std::size_t>(n)));
  }

  Value read_items(std::uint64_t n, TypeId elem) {
    Value arr = Value::array();
    for (std::uint64_t i = 0; i < n; ++i) arr.push_back(read(elem));
    return arr;
  }

  static std::string describe(const Type& t) {
    std::string p = t.path_string();
    return p.empty() ? "an unnamed type" : p;
  }

  const Metadata& m_;
  scale::Decoder& d_;
  std::uint64_t budget_;
  int depth_ = 0;
};

// ---- encoding ----

class Writer {
 public:
  Writer(const Metadata& m, scale::Encoder& e) : m_(m), e_(e) {}

  void write(TypeId id, const Value& v) {
    if (++depth_ > kMaxDepth) fail("the value nests deeper than " + std::to_string(kMaxDepth) + " levels");
    const Type& t = m_.type(id);
    std::visit([&](const auto& def) { write_def(t, def, v); }, t.def);
    --depth_;
  }

 private:
  // Keeps the path to the value being written, for the error message.
  struct Step {
    Step(Writer& w, std::string s) : w_(w) { w_.path_.push_back(std::move(s)); }
    ~Step() { w_.path_.pop_back(); }
    Step(const Step&) = delete;
    Step& operator=(const Step&) = delete;
    Writer& w_;
  };

  [[noreturn]] void fail(const std::string& what) const {
    std::string where;
    for (const auto& s : path_) where += (where.empty() || s.front() == '[' ? "" : ".") + s;
    throw UsageError("cannot encode " + (where.empty() ? std::string("the value") : where) + ": " + what);
  }

  void write_fields(const std::vector<Field>& fields, const Value& v) {
    if (fields.empty()) {
      if (!(v.is_null() || (v.is_array() && v.empty()) || (v.is_object() && v.empty())))
        fail("expected no fields (null or []), got " + show(v));
      return;
    }
    if (all_named(fields)) return write_named(fields, v);
    if (fields.size() == 1) return write(fields[0].type, v);
    if (!v.is_array() || v.size() != fields.size())
      fail("expected an array of " + std::to_string(fields.size()) + " values, got " + show(v));
    for (std::size_t i = 0; i < fields.size(); ++i) {
      Step s(*this, "[" + std::to_string(i) + "]");
      write(fields[i].type, v[i]);
    }
  }

  void write_named(const std::vector<Field>& fields, const Value& v) {
    if (!v.is_object()) fail("expected an object with named fields, got " + show(v));
    for (const auto& f : fields) {
      Step s(*this, *f.name);
      auto it = v.find(*f.name);
      if (it == v.end()) fail("the field is missing");
      write(f.type, *it);
    }
    for (const auto& [key, _] : v.items()) {
      bool known = std::any_of(fields.begin(), fields.end(), [&](const Field& f) { return *f.name == key; });
      if (!known) fail("unknown field \"" + key + "\"");
    }
  }

  void write_def(const Type&, const Composite& c, const Value& v) { write_fields(c.fields, v); }

  const Variant& variant_named(const Enum& e, const std::string& name) {
    for (const auto& var : e.variants)
      if (var.name == name) return var;
    fail("no variant named \"" + name + "\"");
  }

  void write_def(const Type& t, const Enum& e, const Value& v) {
    if (is_option(t)) {
      const Variant& var = variant_named(e, v.is_null() ? "None" : "Some");
      e_.u8(var.index);
      if (!v.is_null()) write_fields(var.fields, v);
      return;
    }
    if (v.is_string()) {
      const Variant& var = variant_named(e, v.get<std::string>());
      if (!var.fields.empty()) fail("variant " + var.name + " has fields: give {\"" + var.name + "\": fields}");
      return e_.u8(var.index);
    }
    if (!v.is_object() || v.size() != 1) fail("expected a variant name or {\"Name\": fields}, got " + show(v));
    const Variant& var = variant_named(e, v.begin().key());
    e_.u8(var.index);
    Step s(*this, var.name);
    write_fields(var.fields, v.begin().value());
  }

  Bytes bytes_of(const Value& v) {
    if (v.is_string()) {
      auto b = from_hex(v.get<std::string>());
      if (!b) fail("expected 0x-prefixed hex bytes, got " + show(v));
      return *b;
    }
    if (!v.is_array()) fail("expected 0x-prefixed hex bytes, got " + show(v));
    Bytes out;
    for (const auto& x : v) {
      if (!x.is_number_unsigned() || x.get<std::uint64_t>() > 255) fail("expected bytes, got " + show(v));
      out.push_back(static_cast<std::uint8_t>(x.get<std::uint64_t>()));
    }
    return out;
  }

  void write_items(const Value& v, TypeId elem) {
    for (std::size_t i = 0; i < v.size(); ++i) {
      Step s(*this, "[" + std::to_string(i) + "]");
      write(elem, v[i]);
    }
  }

  void write_def(const Type&, const Sequence& s, const Value& v) {
    if (is_u8(m_, s.element)) return e_.bytes(bytes_of(v));
    if (!v.is_array()) fail("expected an array, got " + show(v));
    e_.compact(v.size());
    write_items(v, s.element);
  }

  void write_def(const Type&, const Array& a, const Value& v) {
    if (is_u8(m_, a.element)) {
      Bytes b = bytes_of(v);
      if (b.size() != a.len) fail("expected " + std::to_string(a.len) + " bytes, got " + std::to_string(b.size()));
      return e_.raw(b);
    }
    if (!v.is_array() || v.size() != a.len) fail("expected an array of " + std::to_string(a.len) + " values");
    write_items(v, a.element);
  }

  void write_def(const Type&, const Tuple& t, const Value& v) {
    if (!v.is_array() || v.size() != t.elements.size())
      fail("expected an array of " + std::to_string(t.elements.size()) + " values, got " + show(v));
    for (std::size_t i = 0; i < t.elements.size(); ++i) {
      Step s(*this, "[" + std::to_string(i) + "]");
      write(t.elements[i], v[i]);
    }
  }

  Bytes int_bytes(const Value& v, IntKind k) {
    std::string text;
    if (v.is_number_unsigned()) text = std::to_string(v.get<std::uint64_t>());
    else if (v.is_number_integer()) text = std::to_string(v.get<std::int64_t>());
    else if (v.is_string()) text = v.get<std::string>();
    else fail("expected an integer, got " + show(v));
    auto b = from_decimal(text, k);
    if (!b) fail("\"" + text + "\" is not a " + std::to_string(8 * k.width) + "-bit " +
                 (k.is_signed ? "signed" : "unsigned") + " integer");
    return *b;
  }

  void write_def(const Type&, Primitive p, const Value& v) {
    switch (p) {
      case Primitive::Bool:
        if (!v.is_boolean()) fail("expected true or false, got " + show(v));
        return e_.boolean(v.get<bool>());
      case Primitive::Str:
        if (!v.is_string() || !valid_utf8(v.get<std::string>())) fail("expected a UTF-8 string, got " + show(v));
        return e_.str(v.get<std::string>());
      case Primitive::Char: {
        std::string s = v.is_string() ? v.get<std::string>() : std::string();
        std::size_t i = 0;
        auto cp = s.empty() ? std::nullopt : next_code_point(s, i);
        if (!cp || i != s.size()) fail("expected a string of one character, got " + show(v));
        return e_.u32(*cp);
      }
      default: return e_.raw(int_bytes(v, *int_kind(p)));
    }
  }

  void write_def(const Type&, const Compact& c, const Value& v) {
    auto k = compact_target(m_, c.inner);
    if (!k) fail("Compact of a non-integer type is not supported");
    Bytes le = int_bytes(v, *k);
    scale::u128 x = 0;
    for (std::size_t i = le.size(); i-- > 0;) x = (x << 8) | le[i];
    e_.compact128(x);
  }

  void write_def(const Type&, const BitSequence& b, const Value& v) {
    auto layout = bit_layout(m_, b);
    if (!layout) fail("unsupported bit sequence layout");
    if (!v.is_array()) fail("expected an array of booleans, got " + show(v));
    std::vector<std::uint64_t> words((v.size() + layout->word_bits - 1) / layout->word_bits, 0);
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (!v[i].is_boolean()) fail("expected an array of booleans, got " + show(v));
      if (v[i].get<bool>()) words[i / layout->word_bits] |= std::uint64_t{1} << bit_shift(*layout, i);
    }
    e_.compact(v.size());
    for (std::uint64_t w : words)
      for (unsigned i = 0; i < layout->word_bits / 8; ++i) e_.u8(static_cast<std::uint8_t>(w >> (8 * i)));
  }

  const Metadata& m_;
  scale::Encoder& e_;
  std::vector<std::string> path_;
  int depth_ = 0;
};

// ---- System.Events ----

struct EventsLayout {
  TypeId records;  // Vec<EventRecord>
  TypeId event;    // RuntimeEvent
};

EventsLayout events_layout(const Metadata& m) {
  const StorageEntry& entry = m.storage_entry("System", "Events");
  const Sequence* seq = m.type(entry.value).as<Sequence>();
  const Composite* rec = seq ? m.type(seq->element).as<Composite>() : nullptr;
  std::optional<TypeId> event;
  bool phase = false, topics = false;
  if (rec)
    for (const auto& f : rec->fields) {
      if (f.name == "event") event = f.type;
      phase = phase || f.name == "phase";
      topics = topics || f.name == "topics";
    }
  if (!event || !phase || !topics || !m.type(*event).as<Enum>())
    throw RuntimeError("System.Events in this runtime is not Vec<EventRecord{phase, event, topics}>");
  return {entry.value, *event};
}

const Variant& variant_named(const Metadata& m, TypeId enum_type, std::string_view name) {
  if (const Enum* e = m.type(enum_type).as<Enum>())
    for (const auto& v : e->variants)
      if (v.name == name) return v;
  throw RuntimeError("the runtime has no event variant " + std::string(name));
}

// The pallet's own event enum: RuntimeEvent's variant for a pallet wraps exactly that enum.
TypeId pallet_event_enum(const Metadata& m, const Variant& pallet_variant) {
  if (pallet_variant.fields.size() != 1 || !m.type(pallet_variant.fields[0].type).as<Enum>())
    throw RuntimeError("RuntimeEvent::" + pallet_variant.name + " does not wrap a pallet event enum");
  return pallet_variant.fields[0].type;
}

EventRecord to_record(const Metadata& m, TypeId event_type, const Value& rec) {
  EventRecord r;
  r.phase = rec.at("phase");
  const Value& ev = rec.at("event");  // {"Pallet": "Event"} or {"Pallet": {"Event": fields}}
  if (!ev.is_object() || ev.size() != 1) throw RuntimeError("unexpected RuntimeEvent shape: " + show(ev));
  r.pallet = ev.begin().key();
  const Variant& pv = variant_named(m, event_type, r.pallet);
  r.pallet_index = pv.index;
  const Value& inner = ev.begin().value();
  if (inner.is_string()) {
    r.name = inner.get<std::string>();
  } else if (inner.is_object() && inner.size() == 1) {
    r.name = inner.begin().key();
    r.fields = inner.begin().value();
  } else {
    throw RuntimeError("unexpected event shape under " + r.pallet + ": " + show(inner));
  }
  r.event_index = variant_named(m, pallet_event_enum(m, pv), r.name).index;
  for (const auto& t : rec.at("topics")) {
    auto h = t.is_string() ? hash32_from_hex(t.get<std::string>()) : std::nullopt;
    if (!h) throw RuntimeError("event topic is not a 32-byte hash: " + show(t));
    r.topics.push_back(*h);
  }
  return r;
}

}  // namespace

Value Metadata::decode(TypeId id, scale::Decoder& d) const {
  (void)type(id);
  return Reader(*this, d).read(id);
}

Value Metadata::decode(TypeId id, ByteView whole) const {
  scale::Decoder d(whole);
  Value v = decode(id, d);
  d.expect_end();
  return v;
}

void Metadata::encode(TypeId id, const Value& v, scale::Encoder& e) const {
  (void)type(id);
  Writer(*this, e).write(id, v);
}

Bytes Metadata::encode(TypeId id, const Value& v) const {
  scale::Encoder e;
  encode(id, v, e);
  return std::move(e).take();
}

std::vector<EventRecord> Metadata::decode_events(ByteView storage_value) const {
  EventsLayout layout = events_layout(*this);
  Value all = decode(layout.records, storage_value);
  std::vector<EventRecord> out;
  out.reserve(all.size());
  for (const auto& rec : all) out.push_back(to_record(*this, layout.event, rec));
  return out;
}

Bytes Metadata::encode_events(const std::vector<EventRecord>& records) const {
  EventsLayout layout = events_layout(*this);
  Value all = Value::array();
  for (const auto& r : records) {
    const Variant& pv = variant_named(*this, layout.event, r.pallet);
    const Variant& ev = variant_named(*this, pallet_event_enum(*this, pv), r.name);
    Value inner;
    if (ev.fields.empty()) {
      inner = r.name;
    } else {
      inner = Value::object();
      inner[r.name] = r.fields;
    }
    Value event = Value::object();
    event[r.pallet] = inner;
    Value topics = Value::array();
    for (const auto& t : r.topics) topics.push_back(to_hex(t));
    Value rec = Value::object();
    rec["phase"] = r.phase;
    rec["event"] = event;
    rec["topics"] = topics;
    all.push_back(rec);
  }
  return encode(layout.records, all);
}

}  // namespace p2p::metadata
