// metadata: a node's runtime metadata (V14/V15): its type registry, pallets, extrinsic format, and a
// generic SCALE decoder/encoder driven by the registry, so any pallet's events can be read. Pure: no I/O.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "scale/codec.hpp"
#include "util/bytes.hpp"

namespace p2p::metadata {

// The decoded value tree. Shapes, by type:
//   composite with named fields -> object; with one unnamed field -> that field's value (newtypes such as
//   AccountId32 or H256 are transparent); with several unnamed fields (or none) -> array
//   variant -> "Name" when it has no fields, else {"Name": fields} (fields shaped as for a composite);
//   a type whose path is Option -> null or the value itself
//   [u8; N] and Vec<u8> -> "0x.." hex; other sequences, arrays and tuples -> array
//   bool -> bool; str and char -> string; integers up to 64 bits -> number;
//   u128/i128/u256/i256 -> decimal string; Compact<T> -> as T (number up to 64 bits, else decimal string)
//   bit sequence -> array of bool
using Value = nlohmann::json;
using TypeId = std::uint32_t;

enum class Primitive : std::uint8_t { Bool, Char, Str, U8, U16, U32, U64, U128, U256, I8, I16, I32, I64, I128, I256 };

struct Field {
  std::optional<std::string> name;
  TypeId type = 0;
  std::optional<std::string> type_name;  // the Rust type as written in the source, informative only
};

struct Variant {
  std::string name;
  std::uint8_t index = 0;  // the byte on the wire; need not equal the position
  std::vector<Field> fields;
};

// scale-info's TypeDef kinds.
struct Composite { std::vector<Field> fields; };
struct Enum { std::vector<Variant> variants; };  // TypeDef::Variant
struct Sequence { TypeId element = 0; };
struct Array { std::uint32_t len = 0; TypeId element = 0; };
struct Tuple { std::vector<TypeId> elements; };
struct Compact { TypeId inner = 0; };
struct BitSequence { TypeId store = 0; TypeId order = 0; };
using TypeDef = std::variant<Composite, Enum, Sequence, Array, Tuple, Primitive, Compact, BitSequence>;

struct TypeParam {
  std::string name;
  std::optional<TypeId> type;
};

struct Type {
  std::vector<std::string> path;  // e.g. {"pallet_gear", "pallet", "Event"}; empty for built-ins
  std::vector<TypeParam> params;
  TypeDef def;

  std::string path_string() const;  // "pallet_gear::pallet::Event", or "" when the path is empty
  template <class T>
  const T* as() const { return std::get_if<T>(&def); }
};

enum class Hasher : std::uint8_t { Blake2_128, Blake2_256, Blake2_128Concat, Twox128, Twox256, Twox64Concat, Identity };

struct StorageEntry {
  std::string name;
  bool optional = false;        // modifier Optional (absent value reads as None), else Default
  std::vector<Hasher> hashers;  // empty for a plain entry
  std::optional<TypeId> key;    // set for a map
  TypeId value = 0;
  Bytes default_value;
  bool is_plain() const { return !key; }
};

struct Constant {
  std::string name;
  TypeId type = 0;
  Bytes value;
};

struct Pallet {
  std::string name;
  std::uint8_t index = 0;
  std::optional<TypeId> calls, events, errors;  // each an Enum type
  std::string storage_prefix;                   // usually the pallet name
  std::vector<StorageEntry> storage;
  std::vector<Constant> constants;
};

struct SignedExtension {
  std::string identifier;      // e.g. "CheckNonce"
  TypeId type = 0;             // the "extra" sent in the extrinsic
  TypeId additional_signed = 0;  // signed but not sent
};

struct Extrinsic {
  std::uint8_t version = 0;  // 4 for today's signed extrinsics
  std::vector<SignedExtension> signed_extensions;
  std::optional<TypeId> extrinsic_type;  // V14 only: UncheckedExtrinsic<Address, Call, Signature, Extra>
  std::optional<TypeId> address_type, call_type, signature_type, extra_type;  // V15 only
};

struct RuntimeApiMethod {
  std::string name;
  std::vector<std::pair<std::string, TypeId>> inputs;
  TypeId output = 0;
};

struct RuntimeApi {  // V15 only
  std::string name;
  std::vector<RuntimeApiMethod> methods;
};

// One entry of System.Events.
struct EventRecord {
  Value phase;        // {"ApplyExtrinsic": n}, "Finalization" or "Initialization"
  std::string pallet;  // e.g. "Gear"
  std::string name;    // e.g. "MessageQueued"
  std::uint8_t pallet_index = 0;
  std::uint8_t event_index = 0;
  Value fields;        // the event's fields, shaped as a variant's payload; null when it has none
  std::vector<Hash32> topics;
};

class Metadata {
 public:
  // The bytes of state_getMetadata: "meta" magic ++ version byte ++ RuntimeMetadata. V14 and V15.
  static Metadata parse(ByteView blob);
  // The same as the hex text the RPC returns (0x optional).
  static Metadata parse_hex(std::string_view hex);

  std::uint8_t version() const { return version_; }
  const std::vector<Type>& types() const { return types_; }
  const Type& type(TypeId id) const;  // throws RuntimeError for an unknown id

  const std::vector<Pallet>& pallets() const { return pallets_; }
  const Pallet* find_pallet(std::string_view name) const;
  const Pallet* find_pallet_by_index(std::uint8_t index) const;
  const Pallet& pallet_by_name(std::string_view name) const;  // throws RuntimeError when absent

  // (pallet index, variant index): the two bytes that start a call or an event.
  std::pair<std::uint8_t, std::uint8_t> call_index(std::string_view pallet, std::string_view call) const;
  std::pair<std::uint8_t, std::uint8_t> event_index(std::string_view pallet, std::string_view event) const;

  const Extrinsic& extrinsic() const { return extrinsic_; }
  const std::vector<SignedExtension>& signed_extensions() const { return extrinsic_.signed_extensions; }
  const std::vector<RuntimeApi>& runtime_apis() const { return apis_; }

  TypeId event_type() const;  // the outer RuntimeEvent enum
  TypeId call_type() const;   // the outer RuntimeCall enum

  const StorageEntry& storage_entry(std::string_view pallet, std::string_view entry) const;
  // twox128(prefix) ++ twox128(entry) for a plain entry; throws UsageError for a map.
  Bytes storage_key(std::string_view pallet, std::string_view entry) const;
  // A map entry: the prefix, then each SCALE-encoded key through its hasher.
  Bytes storage_key(std::string_view pallet, std::string_view entry, const std::vector<Bytes>& encoded_keys) const;

  // A lower bound on the encoded size of a value of the type; guards lengths read from the input.
  std::uint64_t min_encoded_size(TypeId id) const;

  // Bounded by a nesting depth and a value-count budget; malformed input throws scale::DecodeError.
  Value decode(TypeId id, scale::Decoder& d) const;
  Value decode(TypeId id, ByteView whole) const;  // the input must hold exactly one value
  // The inverse of decode for the same shapes (also accepts numbers for u128 and decimal strings for any
  // integer). A value that does not fit the type throws UsageError naming where it is.
  void encode(TypeId id, const Value& v, scale::Encoder& e) const;
  Bytes encode(TypeId id, const Value& v) const;

  // The System.Events storage value: Vec<EventRecord>.
  std::vector<EventRecord> decode_events(ByteView storage_value) const;
  Bytes encode_events(const std::vector<EventRecord>& records) const;

 private:
  void validate() const;
  void compute_min_sizes();
  std::uint64_t min_size_of(TypeId id, std::vector<std::uint8_t>& state, int depth);
  void resolve_outer_types();

  std::uint8_t version_ = 0;
  std::vector<Type> types_;
  std::vector<std::uint64_t> min_size_;
  std::vector<Pallet> pallets_;
  Extrinsic extrinsic_;
  std::vector<RuntimeApi> apis_;
  std::optional<TypeId> event_type_, call_type_;
};

// xxHash64 with seeds 0, 1, ... concatenated little-endian; out_len is 8, 16 or 32 (twox64/128/256).
Bytes twox(ByteView data, std::size_t out_len);
// The storage-key transform of one hasher, including the key itself for the *Concat and Identity hashers.
Bytes storage_hash(Hasher h, ByteView encoded_key);

}  // namespace p2p::metadata
