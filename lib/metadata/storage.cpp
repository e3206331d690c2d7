// metadata/storage: storage keys, i.e. the twox/blake2 hashers Substrate applies to pallet and entry
// names and to map keys.
#include <xxhash.h>

#include "metadata/metadata.hpp"

namespace p2p::metadata {

Bytes twox(ByteView data, std::size_t out_len) {
  if (out_len == 0 || out_len % 8 != 0 || out_len > 32) throw RuntimeError("twox output length must be 8, 16 or 32");
  Bytes out;
  out.reserve(out_len);
  for (std::uint64_t seed = 0; seed < out_len / 8; ++seed) {
    std::uint64_t h = XXH64(data.data(), data.size(), seed);
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(h >> (8 * i)));
  }
  return out;
}

Bytes storage_hash(Hasher h, ByteView key) {
  switch (h) {
    case Hasher::Blake2_128: return blake2b(key, 16);
    case Hasher::Blake2_256: return blake2b(key, 32);
    case Hasher::Blake2_128Concat: return concat({blake2b(key, 16), key});
    case Hasher::Twox128: return twox(key, 16);
    case Hasher::Twox256: return twox(key, 32);
    case Hasher::Twox64Concat: return concat({twox(key, 8), key});
    case Hasher::Identity: return Bytes(key.begin(), key.end());
  }
  throw RuntimeError("unknown storage hasher");
}

namespace {
Bytes prefix_key(std::string_view pallet_prefix, std::string_view entry) {
  return concat({twox(view(pallet_prefix), 16), twox(view(entry), 16)});
}
}  // namespace

Bytes Metadata::storage_key(std::string_view pallet, std::string_view entry) const {
  const StorageEntry& e = storage_entry(pallet, entry);
  if (!e.is_plain())
    throw UsageError("storage entry " + std::string(pallet) + "." + std::string(entry) +
                     " is a map: give its key(s) to build the storage key");
  return prefix_key(pallet_by_name(pallet).storage_prefix, e.name);
}

Bytes Metadata::storage_key(std::string_view pallet, std::string_view entry,
                            const std::vector<Bytes>& encoded_keys) const {
  const StorageEntry& e = storage_entry(pallet, entry);
  if (e.hashers.size() != encoded_keys.size())
    throw UsageError("storage entry " + std::string(pallet) + "." + std::string(entry) + " takes " +
                     std::to_string(e.hashers.size()) + " key(s), got " + std::to_string(encoded_keys.size()));
  Bytes out = prefix_key(pallet_by_name(pallet).storage_prefix, e.name);
  for (std::size_t i = 0; i < encoded_keys.size(); ++i) {
    Bytes part = storage_hash(e.hashers[i], encoded_keys[i]);
    out.insert(out.end(), part.begin(), part.end());
  }
  return out;
}

}  // namespace p2p::metadata
