// metadata/metadata: parsing the V14/V15 metadata blob into the registry, pallets and extrinsic format,
// checking every type reference up front so later walks never look up a missing type; plus the lookups.
#include "metadata/metadata.hpp"

#include <algorithm>
#include <limits>
#include <string>

namespace p2p::metadata {

namespace {

using scale::DecodeError;
using scale::Decoder;

constexpr std::uint32_t kMagic = 0x6174656d;  // "meta", read as a little-endian u32
constexpr std::uint64_t kSizeCap = std::uint64_t{1} << 40;  // min sizes saturate here
constexpr int kMinSizeDepth = 256;

// A collection count: every item takes at least min_item bytes, so a count above what is left is a lie.
// This also caps the up-front allocation at a small multiple of the input size.
std::size_t count(Decoder& d, const char* what, std::size_t min_item = 1) {
  std::uint64_t n = d.compact();
  if (n > d.remaining() / min_item)
    throw DecodeError(std::string(what) + " count " + std::to_string(n) + " exceeds the input left");
  return static_cast<std::size_t>(n);
}

TypeId type_id(Decoder& d) {
  std::uint64_t id = d.compact();
  if (id > std::numeric_limits<TypeId>::max()) throw DecodeError("type id does not fit in 32 bits");
  return static_cast<TypeId>(id);
}

std::optional<std::string> opt_str(Decoder& d) {
  return d.option<std::string>([](Decoder& x) { return x.str(); });
}

std::optional<TypeId> opt_type(Decoder& d) {
  return d.option<TypeId>([](Decoder& x) { return type_id(x); });
}

void skip_docs(Decoder& d) {
  for (std::size_t i = 0, n = count(d, "docs"); i < n; ++i) (void)d.str();
}

std::vector<std::string> strings(Decoder& d, const char* what) {
  std::vector<std::string> out(count(d, what));
  for (auto& s : out) s = d.str();
  return out;
}

Field field(Decoder& d) {
  Field f;
  f.name = opt_str(d);
  f.type = type_id(d);
  f.type_name = opt_str(d);
  skip_docs(d);
  return f;
}

std::vector<Field> fields(Decoder& d) {
  std::vector<Field> out(count(d, "fields", 4));
  for (auto& f : out) f = field(d);
  return out;
}

Enum variants(Decoder& d) {
  Enum e;
  e.variants.resize(count(d, "variants", 4));
  for (auto& v : e.variants) {
    v.name = d.str();
    v.fields = fields(d);
    v.index = d.u8();
    skip_docs(d);
  }
  return e;
}

Primitive primitive(Decoder& d) {
  std::uint8_t k = d.u8();
  if (k > static_cast<std::uint8_t>(Primitive::I256))
    throw DecodeError("unknown primitive type tag " + std::to_string(k));
  return static_cast<Primitive>(k);
}

TypeDef type_def(Decoder& d) {
  switch (std::uint8_t tag = d.u8()) {
    case 0: return Composite{fields(d)};
    case 1: return variants(d);
    case 2: return Sequence{type_id(d)};
    case 3: {
      Array a;
      a.len = d.u32();
      a.element = type_id(d);
      return a;
    }
    case 4: {
      Tuple t;
      t.elements.resize(count(d, "tuple fields"));
      for (auto& x : t.elements) x = type_id(d);
      return t;
    }
    case 5: return primitive(d);
    case 6: return Compact{type_id(d)};
    case 7: {
      BitSequence b;
      b.store = type_id(d);
      b.order = type_id(d);
      return b;
    }
    default: throw DecodeError("unknown type definition tag " + std::to_string(tag));
  }
}

Type type_entry(Decoder& d) {
  Type t;
  t.path = strings(d, "path segments");
  t.params.resize(count(d, "type params"));
  for (auto& p : t.params) {
    p.name = d.str();
    p.type = opt_type(d);
  }
  t.def = type_def(d);
  skip_docs(d);
  return t;
}

std::vector<Type> registry(Decoder& d) {
  std::vector<Type> out(count(d, "types", 6));
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (type_id(d) != i) throw DecodeError("type registry ids are not sequential at entry " + std::to_string(i));
    out[i] = type_entry(d);
  }
  return out;
}

Hasher hasher(Decoder& d) {
  std::uint8_t h = d.u8();
  if (h > static_cast<std::uint8_t>(Hasher::Identity)) throw DecodeError("unknown storage hasher " + std::to_string(h));
  return static_cast<Hasher>(h);
}

StorageEntry storage_entry(Decoder& d) {
  StorageEntry e;
  e.name = d.str();
  std::uint8_t modifier = d.u8();
  if (modifier > 1) throw DecodeError("unknown storage modifier " + std::to_string(modifier));
  e.optional = modifier == 0;
  switch (std::uint8_t kind = d.u8()) {
    case 0: e.value = type_id(d); break;
    case 1:
      e.hashers.resize(count(d, "hashers"));
      for (auto& h : e.hashers) h = hasher(d);
      e.key = type_id(d);
      e.value = type_id(d);
      break;
    default: throw DecodeError("unknown storage entry kind " + std::to_string(kind));
  }
  e.default_value = d.bytes();
  skip_docs(d);
  return e;
}

Pallet pallet(Decoder& d, bool with_docs) {
  Pallet p;
  p.name = d.str();
  std::uint8_t has_storage = d.u8();  // Option<PalletStorageMetadata>
  if (has_storage > 1) throw DecodeError("Option tag must be 0 or 1");
  if (has_storage == 1) {
    p.storage_prefix = d.str();
    p.storage.resize(count(d, "storage entries", 6));
    for (auto& e : p.storage) e = storage_entry(d);
  }
  p.calls = opt_type(d);
  p.events = opt_type(d);
  p.constants.resize(count(d, "constants", 4));
  for (auto& c : p.constants) {
    c.name = d.str();
    c.type = type_id(d);
    c.value = d.bytes();
    skip_docs(d);
  }
  p.errors = opt_type(d);
  p.index = d.u8();
  if (with_docs) skip_docs(d);
  return p;
}

std::vector<SignedExtension> signed_extensions(Decoder& d) {
  std::vector<SignedExtension> out(count(d, "signed extensions", 3));
  for (auto& s : out) {
    s.identifier = d.str();
    s.type = type_id(d);
    s.additional_signed = type_id(d);
  }
  return out;
}

Extrinsic extrinsic_v14(Decoder& d) {
  Extrinsic x;
  x.extrinsic_type = type_id(d);
  x.version = d.u8();
  x.signed_extensions = signed_extensions(d);
  return x;
}

Extrinsic extrinsic_v15(Decoder& d) {
  Extrinsic x;
  x.version = d.u8();
  x.address_type = type_id(d);
  x.call_type = type_id(d);
  x.signature_type = type_id(d);
  x.extra_type = type_id(d);
  x.signed_extensions = signed_extensions(d);
  return x;
}

std::vector<RuntimeApi> read_runtime_apis(Decoder& d) {
  std::vector<RuntimeApi> out(count(d, "runtime apis"));
  for (auto& api : out) {
    api.name = d.str();
    api.methods.resize(count(d, "runtime api methods"));
    for (auto& m : api.methods) {
      m.name = d.str();
      m.inputs.resize(count(d, "runtime api inputs"));
      for (auto& [name, ty] : m.inputs) {
        name = d.str();
        ty = type_id(d);
      }
      m.output = type_id(d);
      skip_docs(d);
    }
    skip_docs(d);
  }
  return out;
}

void skip_custom(Decoder& d, std::vector<TypeId>& refs) {
  for (std::size_t i = 0, n = count(d, "custom values"); i < n; ++i) {
    (void)d.str();
    refs.push_back(type_id(d));
    (void)d.bytes();
  }
}

std::uint64_t sat_add(std::uint64_t a, std::uint64_t b) { return std::min(a + b, kSizeCap); }
std::uint64_t sat_mul(std::uint64_t a, std::uint64_t b) {
  if (a == 0 || b == 0) return 0;
  return a > kSizeCap / b ? kSizeCap : a * b;
}

std::uint64_t primitive_size(Primitive p) {
  switch (p) {
    case Primitive::Bool: case Primitive::U8: case Primitive::I8: return 1;
    case Primitive::U16: case Primitive::I16: return 2;
    case Primitive::Char: case Primitive::U32: case Primitive::I32: return 4;
    case Primitive::U64: case Primitive::I64: return 8;
    case Primitive::U128: case Primitive::I128: return 16;
    case Primitive::U256: case Primitive::I256: return 32;
    case Primitive::Str: return 1;
  }
  return 1;
}

}  // namespace

std::string Type::path_string() const {
  std::string out;
  for (const auto& seg : path) out += (out.empty() ? "" : "::") + seg;
  return out;
}

Metadata Metadata::parse(ByteView blob) {
  Decoder d(blob);
  if (blob.size() < 5 || d.u32() != kMagic)
    throw DecodeError("not runtime metadata: it must start with the magic 0x6d657461 (\"meta\")");
  Metadata m;
  m.version_ = d.u8();
  if (m.version_ != 14 && m.version_ != 15)
    throw DecodeError("runtime metadata version " + std::to_string(m.version_) +
                      " is not supported (need 14 or 15): fetch V15 with state_call Metadata_metadata_at_version");
  bool v15 = m.version_ == 15;
  m.types_ = registry(d);
  m.pallets_.resize(count(d, "pallets", 9));
  for (auto& p : m.pallets_) p = pallet(d, v15);
  m.extrinsic_ = v15 ? extrinsic_v15(d) : extrinsic_v14(d);
  std::vector<TypeId> refs{type_id(d)};  // the runtime type
  if (v15) {
    m.apis_ = read_runtime_apis(d);
    m.call_type_ = type_id(d);  // outer enums: call, event, error
    m.event_type_ = type_id(d);
    refs.push_back(type_id(d));
    skip_custom(d, refs);
  }
  d.expect_end();
  for (TypeId id : refs)
    if (id >= m.types_.size()) throw DecodeError("type id " + std::to_string(id) + " is not in the registry");
  m.validate();
  m.compute_min_sizes();
  m.resolve_outer_types();
  return m;
}

Metadata Metadata::parse_hex(std::string_view hex) {
  auto bytes = from_hex(hex);
  if (!bytes) throw DecodeError("runtime metadata is not valid hex");
  return parse(*bytes);
}

// Every type id the metadata mentions must be in the registry; walks then index types_ without checks.
void Metadata::validate() const {
  auto check = [&](TypeId id) {
    if (id >= types_.size())
      throw DecodeError("type id " + std::to_string(id) + " is not in the registry of " +
                        std::to_string(types_.size()) + " types");
  };
  auto check_fields = [&](const std::vector<Field>& fs) {
    for (const auto& f : fs) check(f.type);
  };
  for (const auto& t : types_) {
    for (const auto& p : t.params)
      if (p.type) check(*p.type);
    std::visit([&](const auto& def) {
      using D = std::decay_t<decltype(def)>;
      if constexpr (std::is_same_v<D, Composite>) check_fields(def.fields);
      else if constexpr (std::is_same_v<D, Enum>) for (const auto& v : def.variants) check_fields(v.fields);
      else if constexpr (std::is_same_v<D, Sequence> || std::is_same_v<D, Array>) check(def.element);
      else if constexpr (std::is_same_v<D, Tuple>) for (TypeId e : def.elements) check(e);
      else if constexpr (std::is_same_v<D, Compact>) check(def.inner);
      else if constexpr (std::is_same_v<D, BitSequence>) { check(def.store); check(def.order); }
    }, t.def);
  }
  for (const auto& p : pallets_) {
    for (auto id : {p.calls, p.events, p.errors})
      if (id) check(*id);
    for (const auto& e : p.storage) {
      check(e.value);
      if (e.key) check(*e.key);
    }
    for (const auto& c : p.constants) check(c.type);
  }
  const auto& x = extrinsic_;
  for (auto id : {x.extrinsic_type, x.address_type, x.call_type, x.signature_type, x.extra_type})
    if (id) check(*id);
  for (const auto& s : x.signed_extensions) {
    check(s.type);
    check(s.additional_signed);
  }
  for (const auto& api : apis_)
    for (const auto& m : api.methods) {
      check(m.output);
      for (const auto& in : m.inputs) check(in.second);
    }
  for (auto id : {event_type_, call_type_})
    if (id) check(*id);
}

void Metadata::compute_min_sizes() {
  min_size_.assign(types_.size(), 0);
  std::vector<std::uint8_t> state(types_.size(), 0);  // 0 new, 1 in progress, 2 done
  for (TypeId id = 0; id < types_.size(); ++id) min_size_of(id, state, 0);
}

// Recursive types and over-deep chains count as 0: still a lower bound, which is all the guards need.
std::uint64_t Metadata::min_size_of(TypeId id, std::vector<std::uint8_t>& state, int depth) {
  if (state[id] == 2) return min_size_[id];
  if (state[id] == 1 || depth > kMinSizeDepth) return 0;
  state[id] = 1;
  auto sub = [&](TypeId t) { return min_size_of(t, state, depth + 1); };
  auto sum_fields = [&](const std::vector<Field>& fs) {
    std::uint64_t s = 0;
    for (const auto& f : fs) s = sat_add(s, sub(f.type));
    return s;
  };
  std::uint64_t size = std::visit([&](const auto& def) -> std::uint64_t {
    using D = std::decay_t<decltype(def)>;
    if constexpr (std::is_same_v<D, Composite>) return sum_fields(def.fields);
    else if constexpr (std::is_same_v<D, Enum>) {
      std::uint64_t best = kSizeCap;
      for (const auto& v : def.variants) best = std::min(best, sum_fields(v.fields));
      return sat_add(1, def.variants.empty() ? 0 : best);
    } else if constexpr (std::is_same_v<D, Array>) return sat_mul(def.len, sub(def.element));
    else if constexpr (std::is_same_v<D, Tuple>) {
      std::uint64_t s = 0;
      for (TypeId e : def.elements) s = sat_add(s, sub(e));
      return s;
    } else if constexpr (std::is_same_v<D, Primitive>) return primitive_size(def);
    else return 1;  // Sequence, Compact, BitSequence: at least the compact length/value byte
  }, types_[id].def);
  state[id] = 2;
  min_size_[id] = size;
  return size;
}

// V14 has no outer_enums: the event enum is EventRecord.event of System.Events, the call enum is the
// extrinsic type's "Call" parameter.
void Metadata::resolve_outer_types() {
  if (!event_type_) {
    const Pallet* sys = find_pallet("System");
    const StorageEntry* ev = nullptr;
    if (sys)
      for (const auto& e : sys->storage)
        if (e.name == "Events") ev = &e;
    const Sequence* seq = ev ? types_[ev->value].as<Sequence>() : nullptr;
    const Composite* rec = seq ? types_[seq->element].as<Composite>() : nullptr;
    if (rec)
      for (const auto& f : rec->fields)
        if (f.name == "event") event_type_ = f.type;
  }
  if (!call_type_ && extrinsic_.extrinsic_type) {
    for (const auto& p : types_[*extrinsic_.extrinsic_type].params)
      if (p.name == "Call" && p.type) call_type_ = p.type;
  }
}

const Type& Metadata::type(TypeId id) const {
  if (id >= types_.size()) throw RuntimeError("type id " + std::to_string(id) + " is not in the runtime metadata");
  return types_[id];
}

std::uint64_t Metadata::min_encoded_size(TypeId id) const {
  (void)type(id);  // range check with the usual message
  return min_size_[id];
}

const Pallet* Metadata::find_pallet(std::string_view name) const {
  for (const auto& p : pallets_)
    if (p.name == name) return &p;
  return nullptr;
}

const Pallet* Metadata::find_pallet_by_index(std::uint8_t index) const {
  for (const auto& p : pallets_)
    if (p.index == index) return &p;
  return nullptr;
}

const Pallet& Metadata::pallet_by_name(std::string_view name) const {
  if (const Pallet* p = find_pallet(name)) return *p;
  throw RuntimeError("the node's runtime has no pallet " + std::string(name) +
                     ": check that the endpoint is a Vara/Gear node");
}

namespace {
std::uint8_t variant_index(const Metadata& m, const std::optional<TypeId>& enum_type, std::string_view pallet,
                           std::string_view name, const char* kind) {
  const Enum* e = enum_type ? m.type(*enum_type).as<Enum>() : nullptr;
  if (e)
    for (const auto& v : e->variants)
      if (v.name == name) return v.index;
  throw RuntimeError("the node's runtime has no " + std::string(kind) + " " + std::string(pallet) + "." +
                     std::string(name) + ": check that the endpoint runs a compatible Vara/Gear runtime");
}
}  // namespace

std::pair<std::uint8_t, std::uint8_t> Metadata::call_index(std::string_view pallet, std::string_view call) const {
  const Pallet& p = pallet_by_name(pallet);
  return {p.index, variant_index(*this, p.calls, pallet, call, "call")};
}

std::pair<std::uint8_t, std::uint8_t> Metadata::event_index(std::string_view pallet, std::string_view event) const {
  const Pallet& p = pallet_by_name(pallet);
  return {p.index, variant_index(*this, p.events, pallet, event, "event")};
}

TypeId Metadata::event_type() const {
  if (!event_type_) throw RuntimeError("the runtime metadata does not say its event type (no System.Events)");
  return *event_type_;
}

TypeId Metadata::call_type() const {
  if (!call_type_) throw RuntimeError("the runtime metadata does not say its call type");
  return *call_type_;
}

const StorageEntry& Metadata::storage_entry(std::string_view pallet, std::string_view entry) const {
  const Pallet& p = pallet_by_name(pallet);
  for (const auto& e : p.storage)
    if (e.name == entry) return e;
  throw RuntimeError("the node's runtime has no storage entry " + std::string(pallet) + "." + std::string(entry));
}

}  // namespace p2p::metadata
