// gear_rpc/detail: decimal u128 text and the newtype walk shared by the gear_rpc sources.
#include "gear_rpc/detail.hpp"

#include <algorithm>

namespace p2p::gear_rpc::detail {

std::string u128_to_string(scale::u128 v) {
  if (v == 0) return "0";
  std::string s;
  while (v > 0) {
    s.push_back(static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  }
  std::reverse(s.begin(), s.end());
  return s;
}

std::optional<scale::u128> u128_from_string(std::string_view s) {
  if (s.empty() || s.size() > 39) return std::nullopt;
  const scale::u128 max = ~scale::u128{0};
  scale::u128 v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    auto digit = static_cast<unsigned>(c - '0');
    if (v > (max - digit) / 10) return std::nullopt;
    v = v * 10 + digit;
  }
  return v;
}

std::optional<scale::u128> u128_from_json(const nlohmann::json& v) {
  if (v.is_number_unsigned()) return scale::u128{v.get<std::uint64_t>()};
  if (v.is_number_integer() && v.get<std::int64_t>() >= 0) return scale::u128{static_cast<std::uint64_t>(v.get<std::int64_t>())};
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    // Nodes send large numbers as decimal text and, for some fields, as 0x hex.
    if (s.starts_with("0x") && s.size() > 2 && s.size() <= 34) {
      scale::u128 x = 0;
      for (char c : std::string_view(s).substr(2)) {
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return std::nullopt;
        x = (x << 4) | static_cast<unsigned>(d);
      }
      return x;
    }
    return u128_from_string(s);
  }
  return std::nullopt;
}

metadata::TypeId unwrap_newtypes(const metadata::Metadata& md, metadata::TypeId id) {
  for (int hop = 0; hop < 16; ++hop) {
    const auto* c = md.type(id).as<metadata::Composite>();
    if (!c || c->fields.size() != 1) break;
    id = c->fields[0].type;
  }
  return id;
}

}  // namespace p2p::gear_rpc::detail
