// gear_rpc/detail: small helpers the gear_rpc sources share: u128 as decimal text (how the metadata
// decoder and JSON-RPC carry balances) and the newtype walk that finds what a wrapper type wraps.
#pragma once
#include <optional>
#include <string>
#include <string_view>

#include "metadata/metadata.hpp"
#include "scale/codec.hpp"

namespace p2p::gear_rpc::detail {

std::string u128_to_string(scale::u128 v);
// Digits only, no sign; nullopt when empty, malformed or above 2^128-1.
std::optional<scale::u128> u128_from_string(std::string_view s);
// A JSON number or decimal string as u128; nullopt for anything else.
std::optional<scale::u128> u128_from_json(const nlohmann::json& v);

// Follows single-field composites (newtypes such as CheckMortality(Era)) down to the type they wrap.
metadata::TypeId unwrap_newtypes(const metadata::Metadata& md, metadata::TypeId id);

}  // namespace p2p::gear_rpc::detail
