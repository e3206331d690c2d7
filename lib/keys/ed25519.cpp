// keys/ed25519: libsodium ed25519 signing, base58, SS58 account addresses,
// and parsing of address and seed arguments.
#include "keys/ed25519.hpp"

#include <sodium.h>

#include <algorithm>
#include <optional>

namespace p2p::keys {
namespace {

void ensure_sodium() {
  // A function-local static runs once even when several threads race here.
  static const bool ready = sodium_init() >= 0;
  if (!ready) throw RuntimeError("libsodium failed to initialise; the system random source may be unavailable");
}

// libsodium wants a non-null pointer even for an empty message.
const std::uint8_t* data_or_dummy(ByteView bytes) {
  static const std::uint8_t dummy = 0;
  return bytes.empty() ? &dummy : bytes.data();
}

// ---- base58 (bitcoin alphabet) ----

constexpr std::string_view kAlphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

// SS58 of a 32-byte account is at most 36 bytes, about 50 digits; anything much
// longer is rejected before the quadratic conversion runs.
constexpr std::size_t kMaxBase58Digits = 64;

int base58_value(char c) {
  auto pos = kAlphabet.find(c);
  return pos == std::string_view::npos ? -1 : static_cast<int>(pos);
}

std::string base58_encode(ByteView bytes) {
  std::size_t zeros = 0;
  while (zeros < bytes.size() && bytes[zeros] == 0) ++zeros;
  // Little-endian base-58 digits of the big-endian number.
  std::vector<std::uint8_t> digits;
  for (std::size_t i = zeros; i < bytes.size(); ++i) {
    unsigned carry = bytes[i];
    for (auto& d : digits) {
      carry += static_cast<unsigned>(d) << 8;
      d = static_cast<std::uint8_t>(carry % 58);
      carry /= 58;
    }
    while (carry > 0) {
      digits.push_back(static_cast<std::uint8_t>(carry % 58));
      carry /= 58;
    }
  }
  std::string out(zeros, '1');
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) out += kAlphabet[*it];
  return out;
}

// nullopt on a non-alphabet character.
std::optional<Bytes> base58_decode(std::string_view text) {
  std::size_t ones = 0;
  while (ones < text.size() && text[ones] == '1') ++ones;
  std::vector<std::uint8_t> bytes;  // little-endian base-256
  for (std::size_t i = ones; i < text.size(); ++i) {
    int v = base58_value(text[i]);
    if (v < 0) return std::nullopt;
    unsigned carry = static_cast<unsigned>(v);
    for (auto& b : bytes) {
      carry += static_cast<unsigned>(b) * 58;
      b = static_cast<std::uint8_t>(carry & 0xff);
      carry >>= 8;
    }
    while (carry > 0) {
      bytes.push_back(static_cast<std::uint8_t>(carry & 0xff));
      carry >>= 8;
    }
  }
  Bytes out(ones, 0);
  out.insert(out.end(), bytes.rbegin(), bytes.rend());
  return out;
}

// ---- SS58 ----

constexpr std::uint16_t kMaxPrefix = 16383;
constexpr std::size_t kChecksumLen = 2;  // for 32-byte account payloads

Bytes prefix_bytes(std::uint16_t p) {
  if (p < 64) return {static_cast<std::uint8_t>(p)};
  return {static_cast<std::uint8_t>(((p & 0xfc) >> 2) | 0x40),
          static_cast<std::uint8_t>((p >> 8) | ((p & 0x03) << 6))};
}

Bytes ss58_checksum(ByteView prefix_and_pk) {
  Bytes hash = blake2b(concat({view("SS58PRE"), prefix_and_pk}), 64);
  hash.resize(kChecksumLen);
  return hash;
}

enum class DecodeStatus { ok, bad_digit, bad_length, bad_prefix, bad_checksum };

DecodeStatus try_ss58_decode(std::string_view text, Ss58Address& out) {
  if (text.empty() || text.size() > kMaxBase58Digits) return DecodeStatus::bad_length;
  auto raw = base58_decode(text);
  if (!raw) return DecodeStatus::bad_digit;
  const Bytes& b = *raw;
  if (b.empty()) return DecodeStatus::bad_length;
  std::size_t prefix_len = 0;
  std::uint16_t prefix = 0;
  if (b[0] < 64) {
    prefix_len = 1;
    prefix = b[0];
  } else if (b[0] < 128) {
    if (b.size() < 2) return DecodeStatus::bad_length;
    prefix_len = 2;
    prefix = static_cast<std::uint16_t>(((b[0] & 0x3f) << 2) | (b[1] >> 6) | ((b[1] & 0x3f) << 8));
  } else {
    return DecodeStatus::bad_prefix;  // 128..255 are reserved by the SS58 spec
  }
  if (b.size() != prefix_len + 32 + kChecksumLen) return DecodeStatus::bad_length;
  ByteView body(b.data(), prefix_len + 32);
  Bytes sum = ss58_checksum(body);
  if (!std::equal(sum.begin(), sum.end(), b.begin() + static_cast<std::ptrdiff_t>(body.size())))
    return DecodeStatus::bad_checksum;
  std::copy_n(b.begin() + static_cast<std::ptrdiff_t>(prefix_len), 32, out.public_key.begin());
  out.prefix = prefix;
  return DecodeStatus::ok;
}

// Echoes user input in messages, but never a page of it.
std::string quoted(std::string_view text) {
  constexpr std::size_t kMax = 80;
  if (text.size() <= kMax) return "'" + std::string(text) + "'";
  return "'" + std::string(text.substr(0, kMax)) + "...'";
}

bool has_hex_prefix(std::string_view text) {
  return text.size() >= 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X');
}

bool all_hex(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  });
}

}  // namespace

// ---- Keypair ----

Keypair Keypair::from_seed(const Seed& seed) {
  ensure_sodium();
  Keypair kp;
  kp.seed_ = seed;
  crypto_sign_seed_keypair(kp.pk_.data(), kp.sk_.data(), seed.data());
  return kp;
}

Keypair Keypair::generate() {
  ensure_sodium();
  Seed seed;
  randombytes_buf(seed.data(), seed.size());
  Keypair kp = from_seed(seed);
  sodium_memzero(seed.data(), seed.size());
  return kp;
}

Keypair::~Keypair() {
  sodium_memzero(seed_.data(), seed_.size());
  sodium_memzero(sk_.data(), sk_.size());
}

Signature Keypair::sign(ByteView message) const {
  ensure_sodium();
  Signature sig;
  crypto_sign_detached(sig.data(), nullptr, data_or_dummy(message), message.size(), sk_.data());
  return sig;
}

bool verify(const PublicKey& pk, ByteView message, const Signature& sig) {
  ensure_sodium();
  return crypto_sign_verify_detached(sig.data(), data_or_dummy(message), message.size(), pk.data()) == 0;
}

// ---- SS58 ----

std::string ss58_encode(const PublicKey& pk, std::uint16_t prefix) {
  if (prefix > kMaxPrefix)
    throw UsageError("SS58 prefix " + std::to_string(prefix) + " is out of range: use 0..16383 (Vara is 137)");
  Bytes body = concat({prefix_bytes(prefix), pk});
  Bytes sum = ss58_checksum(body);
  body.insert(body.end(), sum.begin(), sum.end());
  return base58_encode(body);
}

Ss58Address ss58_decode(std::string_view text) {
  Ss58Address out;
  switch (try_ss58_decode(text, out)) {
    case DecodeStatus::ok:
      return out;
    case DecodeStatus::bad_digit:
      throw UsageError(quoted(text) + " is not SS58: it has a character outside the base58 alphabet");
    case DecodeStatus::bad_length:
      throw UsageError(quoted(text) + " is not SS58 of a 32-byte account: wrong length");
    case DecodeStatus::bad_prefix:
      throw UsageError(quoted(text) + " is not SS58: its network prefix byte is reserved");
    case DecodeStatus::bad_checksum:
      break;
  }
  throw UsageError(quoted(text) + " has a bad SS58 checksum: check the address for a typo");
}

PublicKey parse_address(std::string_view text) {
  const std::string expected = " is not an address: expected SS58 (e.g. kG...) or 0x + 64 hex digits";
  std::string_view digits = has_hex_prefix(text) ? text.substr(2) : text;
  if (has_hex_prefix(text) || (text.size() == 64 && all_hex(text))) {
    if (digits.size() != 64 || !all_hex(digits)) throw UsageError(quoted(text) + expected);
    PublicKey pk{};
    auto bytes = from_hex(digits);
    std::copy(bytes->begin(), bytes->end(), pk.begin());
    return pk;
  }
  Ss58Address addr;
  switch (try_ss58_decode(text, addr)) {
    case DecodeStatus::ok:
      return addr.public_key;
    case DecodeStatus::bad_checksum:
      throw UsageError(quoted(text) + " has a bad SS58 checksum: check the address for a typo");
    default:
      throw UsageError(quoted(text) + expected);
  }
}

Seed parse_seed(std::string_view text) {
  // The seed is secret: messages describe it but never echo it.
  const std::string expected = "expected 0x followed by 64 hex digits (32 bytes)";
  if (!has_hex_prefix(text)) throw UsageError("the seed does not start with 0x: " + expected);
  std::string_view digits = text.substr(2);
  if (!all_hex(digits)) throw UsageError("the seed has a character that is not a hex digit: " + expected);
  if (digits.size() != 64)
    throw UsageError("the seed has " + std::to_string(digits.size()) + " hex digits: " + expected);
  Seed seed;
  auto bytes = from_hex(digits);
  std::copy(bytes->begin(), bytes->end(), seed.begin());
  sodium_memzero(bytes->data(), bytes->size());
  return seed;
}

}  // namespace p2p::keys
