// gear_rpc/gear_transport: the node-backed chain::Transport. Every step is a plain JSON-RPC call, so the
// same code talks to a Vara node and to `p2pstream devnode`; nothing here knows which one it is.
#include "gear_rpc/gear_transport.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <limits>
#include <thread>

#include "gear_rpc/block_events.hpp"
#include "gear_rpc/detail.hpp"
#include "sails/sails.hpp"

namespace p2p::gear_rpc {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr std::uint64_t kQueryGas = 750'000'000'000;
constexpr std::uint64_t kDefaultBlockMs = 3000;
constexpr std::int64_t kGearRuntimeError = 8000;
const Hash32 kZeroActor{};

std::string secs(milliseconds ms) { return fmt::format("{:g}", static_cast<double>(ms.count()) / 1000.0); }

[[noreturn]] void malformed(const RpcClient& rpc, const std::string& method, const std::string& why) {
  throw RuntimeError(fmt::format("malformed answer from {} to {}: {}", rpc.url(), method, why));
}

const json& field(const RpcClient& rpc, const std::string& method, const json& obj, const char* key) {
  if (!obj.is_object() || !obj.contains(key)) malformed(rpc, method, fmt::format("no \"{}\"", key));
  return obj[key];
}

std::string hex_string(const RpcClient& rpc, const std::string& method, const json& v) {
  if (!v.is_string() || !from_hex(v.get<std::string>())) malformed(rpc, method, "expected 0x hex");
  return v.get<std::string>();
}

Hash32 hash_of(const RpcClient& rpc, const std::string& method, const json& v) {
  auto h = v.is_string() ? hash32_from_hex(v.get<std::string>()) : std::nullopt;
  if (!h) malformed(rpc, method, "expected a 32-byte 0x hash");
  return *h;
}

std::uint64_t u64_of(const RpcClient& rpc, const std::string& method, const json& v) {
  auto x = detail::u128_from_json(v);
  if (!x || *x > std::numeric_limits<std::uint64_t>::max()) malformed(rpc, method, "expected an unsigned 64-bit number");
  return static_cast<std::uint64_t>(*x);
}

// A u64 constant of a pallet (little-endian bytes), if the runtime declares it.
std::optional<std::uint64_t> u64_constant(const metadata::Metadata& md, std::string_view pallet, std::string_view name) {
  const auto* p = md.find_pallet(pallet);
  if (!p) return std::nullopt;
  for (const auto& c : p->constants)
    if (c.name == name && c.value.size() == 8) {
      std::uint64_t v = 0;
      for (std::size_t i = 8; i-- > 0;) v = (v << 8) | c.value[i];
      return v;
    }
  return std::nullopt;
}

std::optional<Bytes> read_whole(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return std::nullopt;
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Best effort: a cache that cannot be written only costs a download next time.
void write_atomically(const std::filesystem::path& p, ByteView data) {
  std::error_code ec;
  std::filesystem::create_directories(p.parent_path(), ec);
  auto tmp = p;
  tmp += fmt::format(".tmp{}", ::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return;
    out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
    if (!out) {
      std::filesystem::remove(tmp, ec);
      return;
    }
  }
  std::filesystem::rename(tmp, p, ec);
  if (ec) std::filesystem::remove(tmp, ec);
}

// The block's time from its Timestamp.set inherent (an unsigned extrinsic every block carries), which saves
// a storage read and works on nodes that serve only System storage.
std::optional<std::uint64_t> inherent_time(const metadata::Metadata& md, const std::vector<Bytes>& extrinsics) {
  if (!md.find_pallet("Timestamp")) return std::nullopt;
  std::pair<std::uint8_t, std::uint8_t> set;
  try {
    set = md.call_index("Timestamp", "set");
  } catch (const Error&) {
    return std::nullopt;
  }
  for (const auto& x : extrinsics) {
    try {
      scale::Decoder d(x);
      if (d.compact() != d.remaining() || (d.u8() & 0x80)) continue;  // signed: not an inherent
      ByteView call = d.raw(d.remaining());
      if (call.size() < 2 || call[0] != set.first || call[1] != set.second) continue;
      json v = md.decode(md.call_type(), call);
      const json& now = v["Timestamp"]["set"]["now"];
      if (now.is_number_unsigned()) return now.get<std::uint64_t>();
    } catch (const std::exception&) {
      continue;  // not the shape we know; the storage read is the fallback
    }
  }
  return std::nullopt;
}

}  // namespace

struct GearTransport::Inclusion {
  std::uint64_t number = 0;
  std::string hash;
  std::uint32_t index = 0;
  std::optional<std::uint64_t> time_ms;
};

namespace {

// Rust's Debug form of a string ("\"...\"" with \" and \\ escaped), which Gear puts in an error's data.
std::string debug_unquote(const std::string& s) {
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return s;
  std::string out;
  for (std::size_t i = 1; i + 1 < s.size(); ++i) {
    if (s[i] == '\\' && i + 2 < s.size()) ++i;
    out.push_back(s[i]);
  }
  return out;
}

}  // namespace

std::optional<std::string> panic_from_rpc_error(const RpcError& e) {
  std::string text = e.data().is_string() ? debug_unquote(e.data().get<std::string>()) : std::string();
  auto at = text.find("panicked with");
  if (at == std::string::npos) {
    text = e.details();
    at = text.find("panicked with");
  }
  if (at == std::string::npos) {
    if (e.rpc_code() == kGearRuntimeError) return e.details();
    return std::nullopt;
  }
  // Gear wraps the panic: "Program terminated with a trap: 'Panic occurred: panicked with 'MSG''". Each
  // quote opened before "panicked with" closes after the panic's own closing quote: drop those.
  std::string part = text.substr(at);
  while (!part.empty() && (part.back() == ' ' || part.back() == '"')) part.pop_back();
  auto opened = std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\'');
  for (; opened > 0 && part.ends_with("''"); --opened) part.pop_back();
  return sails::panic_message(view(part));
}

std::optional<std::filesystem::path> default_cache_dir() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x == '/') return std::filesystem::path(x) / "p2pstream";
  if (const char* h = std::getenv("HOME"); h && *h) return std::filesystem::path(h) / ".cache" / "p2pstream";
  return std::nullopt;
}

std::uint64_t parse_block_number(const json& v, const std::string& what) {
  if (v.is_number_unsigned()) return v.get<std::uint64_t>();
  if (v.is_number_integer() && v.get<std::int64_t>() >= 0) return static_cast<std::uint64_t>(v.get<std::int64_t>());
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    if (s.starts_with("0x") && s.size() > 2 && s.size() <= 18) {
      std::uint64_t n = 0;
      bool ok = true;
      for (char c : std::string_view(s).substr(2)) {
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) ok = false;
        n = (n << 4) | static_cast<std::uint64_t>(d < 0 ? 0 : d);
      }
      if (ok) return n;
    }
  }
  throw RuntimeError(fmt::format("{}: the block number is not a 0x hex number", what));
}

// ---- construction and chain facts ----

GearTransport::GearTransport(std::unique_ptr<RpcClient> rpc, GearOptions opts) : rpc_(std::move(rpc)), opts_(std::move(opts)) {}

GearTransport::~GearTransport() = default;

std::unique_ptr<GearTransport> GearTransport::open(const std::string& endpoint, GearOptions opts) {
  auto rpc = connect(endpoint, opts.rpc);
  return std::make_unique<GearTransport>(std::move(rpc), std::move(opts));
}

std::string GearTransport::describe() const { return rpc_->url(); }

void GearTransport::progress(const std::string& msg) const {
  if (opts_.progress) opts_.progress(msg);
}

const ChainInfo& GearTransport::chain_info() {
  if (info_) return *info_;
  ChainInfo ci;
  ci.genesis = hash_of(*rpc_, "chain_getBlockHash", rpc_->call("chain_getBlockHash", json::array({0})));
  json rv = rpc_->call("state_getRuntimeVersion", json::array());
  const std::string m = "state_getRuntimeVersion";
  std::uint64_t spec = u64_of(*rpc_, m, field(*rpc_, m, rv, "specVersion"));
  std::uint64_t tx = u64_of(*rpc_, m, field(*rpc_, m, rv, "transactionVersion"));
  if (spec > UINT32_MAX || tx > UINT32_MAX) malformed(*rpc_, m, "a version does not fit in 32 bits");
  ci.spec_version = static_cast<std::uint32_t>(spec);
  ci.tx_version = static_cast<std::uint32_t>(tx);
  if (rv.contains("specName") && rv["specName"].is_string()) ci.spec_name = rv["specName"].get<std::string>();
  info_ = ci;
  return *info_;
}

std::optional<std::filesystem::path> GearTransport::cache_file() {
  auto dir = opts_.cache_dir ? opts_.cache_dir : default_cache_dir();
  if (!dir || dir->empty()) return std::nullopt;
  const ChainInfo& ci = chain_info();
  return *dir / fmt::format("metadata-{}-{}.scale", to_hex(ci.genesis, false), ci.spec_version);
}

const metadata::Metadata& GearTransport::metadata() {
  if (md_) return *md_;
  auto file = cache_file();
  if (file) {
    if (auto blob = read_whole(*file)) {
      try {
        md_ = metadata::Metadata::parse(*blob);
        return *md_;
      } catch (const Error&) {
        std::error_code ec;
        std::filesystem::remove(*file, ec);  // a damaged cache entry: fetch it again
      }
    }
  }
  progress(fmt::format("fetching the runtime metadata from {}", rpc_->url()));
  json hex = rpc_->call("state_getMetadata", json::array());
  auto blob = hex.is_string() ? from_hex(hex.get<std::string>()) : std::nullopt;
  if (!blob) malformed(*rpc_, "state_getMetadata", "expected 0x hex");
  try {
    md_ = metadata::Metadata::parse(*blob);
  } catch (const Error& e) {
    throw RuntimeError(fmt::format("the runtime metadata from {} does not parse ({}); is it a Gear node?", rpc_->url(),
                                   e.what()));
  }
  if (file) write_atomically(*file, *blob);
  return *md_;
}

std::chrono::milliseconds GearTransport::poll_interval() {
  if (opts_.poll_max.count() > 0) return opts_.poll_max;
  std::uint64_t block = u64_constant(metadata(), "Babe", "ExpectedBlockTime").value_or(0);
  if (block == 0) block = 2 * u64_constant(metadata(), "Timestamp", "MinimumPeriod").value_or(kDefaultBlockMs / 2);
  return milliseconds(std::clamp<std::uint64_t>(block / 2, 50, 30000));
}

std::uint64_t GearTransport::head_number() {
  json header;
  if (opts_.finalized) {
    json hash = rpc_->call("chain_getFinalizedHead", json::array());
    header = rpc_->call("chain_getHeader", json::array({hex_string(*rpc_, "chain_getFinalizedHead", hash)}));
  } else {
    header = rpc_->call("chain_getHeader", json::array());
  }
  return parse_block_number(field(*rpc_, "chain_getHeader", header, "number"),
                            fmt::format("malformed answer from {} to chain_getHeader", rpc_->url()));
}

std::string GearTransport::block_hash(std::uint64_t number) {
  json h = rpc_->call("chain_getBlockHash", json::array({number}));
  if (h.is_null()) throw RuntimeError(fmt::format("{} has no block #{}", rpc_->url(), number));
  return to_hex(hash_of(*rpc_, "chain_getBlockHash", h));
}

std::vector<metadata::EventRecord> GearTransport::events_at(const std::string& hash) {
  const auto& md = metadata();
  json v = rpc_->call("state_getStorage", json::array({to_hex(md.storage_key("System", "Events")), hash}));
  if (v.is_null()) return {};
  auto bytes = v.is_string() ? from_hex(v.get<std::string>()) : std::nullopt;
  if (!bytes) malformed(*rpc_, "state_getStorage", "expected 0x hex");
  try {
    return md.decode_events(*bytes);
  } catch (const Error& e) {
    throw RuntimeError(fmt::format("the events of block {} from {} do not decode with the runtime metadata ({})", hash,
                                   rpc_->url(), e.what()));
  }
}

std::uint64_t GearTransport::block_time_ms(const std::string& hash) {
  const auto& md = metadata();
  if (!md.find_pallet("Timestamp")) return 0;
  json v = rpc_->call("state_getStorage", json::array({to_hex(md.storage_key("Timestamp", "Now")), hash}));
  auto bytes = v.is_string() ? from_hex(v.get<std::string>()) : std::nullopt;
  if (!bytes || bytes->size() != 8) return 0;
  std::uint64_t t = 0;
  for (std::size_t i = 8; i-- > 0;) t = (t << 8) | (*bytes)[i];
  return t;
}

// ---- query ----

Bytes GearTransport::query(const chain::ProgramId& program, ByteView payload) {
  const std::string m = "gear_calculateReplyForHandle";
  json r;
  try {
    r = rpc_->call(m, json::array({to_hex(kZeroActor), to_hex(program), to_hex(payload), kQueryGas, 0}));
  } catch (const RpcError& e) {
    if (auto panic = panic_from_rpc_error(e)) throw RefusedError(fmt::format("refused by the program: {}", *panic));
    throw;
  }
  auto bytes = from_hex(hex_string(*rpc_, m, field(*rpc_, m, r, "payload")));
  const json& code = field(*rpc_, m, r, "code");
  if (code.is_object() && code.contains("Success")) return *bytes;
  if (!code.is_object() || !code.contains("Error")) malformed(*rpc_, m, "unknown reply code " + code.dump());
  throw RefusedError(fmt::format("refused by the program: {}", bytes->empty() ? code.dump() : sails::panic_message(*bytes)));
}

// ---- send ----

std::optional<chain::Receipt> GearTransport::preflight(const keys::Keypair& signer, const chain::ProgramId& program,
                                                       ByteView payload, std::uint64_t& gas_limit) {
  if (opts_.gas_limit) {
    gas_limit = *opts_.gas_limit;
    return std::nullopt;
  }
  const std::string m = "gear_calculateHandleGas";
  json r;
  try {
    r = rpc_->call(m, json::array({to_hex(signer.public_key()), to_hex(program), to_hex(payload), 0, false}));
  } catch (const RpcError& e) {
    auto panic = panic_from_rpc_error(e);
    if (!panic) throw;
    progress("the gas estimate shows the program would refuse the message; nothing was sent");
    chain::Receipt refused;
    refused.ok = false;
    refused.panic = *panic;
    return refused;
  }
  std::uint64_t min = u64_of(*rpc_, m, field(*rpc_, m, r, "min_limit"));
  std::uint64_t limit = min + min / 100 * opts_.gas_margin_percent;
  if (auto cap = u64_constant(metadata(), "GearGas", "BlockGasLimit")) limit = std::min(limit, *cap);
  gas_limit = std::max(limit, min);
  progress(fmt::format("gas limit {} (estimate {} + {}%)", gas_limit, min, opts_.gas_margin_percent));
  return std::nullopt;
}

GearTransport::Inclusion GearTransport::wait_for_inclusion(const Hash32& xt_hash, std::uint64_t after,
                                                           Clock::time_point deadline) {
  std::uint64_t next = after + 1;
  milliseconds pause(50);
  for (;;) {
    std::uint64_t head = head_number();
    for (; next <= head; ++next) {
      std::string hash = block_hash(next);
      json block = rpc_->call("chain_getBlock", json::array({hash}));
      const json& xts = field(*rpc_, "chain_getBlock", field(*rpc_, "chain_getBlock", block, "block"), "extrinsics");
      if (!xts.is_array()) malformed(*rpc_, "chain_getBlock", "extrinsics is not an array");
      std::vector<Bytes> all;
      for (const auto& x : xts) {
        auto bytes = x.is_string() ? from_hex(x.get<std::string>()) : std::nullopt;
        if (!bytes) malformed(*rpc_, "chain_getBlock", "an extrinsic is not 0x hex");
        all.push_back(std::move(*bytes));
      }
      for (std::size_t i = 0; i < all.size(); ++i)
        if (extrinsic_hash(all[i]) == xt_hash)
          return {next, hash, static_cast<std::uint32_t>(i), inherent_time(metadata(), all)};
    }
    auto now = Clock::now();
    if (now >= deadline)
      throw RuntimeError(fmt::format(
          "no {}block included the extrinsic {} within {} s; it may still be included while its era lasts, so check "
          "before sending again (see --timeout)",
          opts_.finalized ? "finalized " : "", to_hex(xt_hash), secs(opts_.timeout)));
    std::this_thread::sleep_for(std::min<Clock::duration>(pause, deadline - now));
    pause = std::min(pause * 2, poll_interval());
  }
}

chain::Receipt GearTransport::send(const keys::Keypair& signer, const chain::ProgramId& program, ByteView payload) {
  const ChainInfo& ci = chain_info();
  const auto& md = metadata();
  std::string who = keys::ss58_encode(signer.public_key());
  std::uint64_t nonce = u64_of(*rpc_, "system_accountNextIndex", rpc_->call("system_accountNextIndex", json::array({who})));

  std::uint64_t gas = 0;
  if (auto refused = preflight(signer, program, payload, gas)) return *refused;

  // Anchor a mortal era at the current best block.
  std::string best = to_hex(hash_of(*rpc_, "chain_getBlockHash", rpc_->call("chain_getBlockHash", json::array())));
  json header = rpc_->call("chain_getHeader", json::array({best}));
  std::uint64_t best_number = parse_block_number(field(*rpc_, "chain_getHeader", header, "number"),
                                                 fmt::format("malformed answer from {} to chain_getHeader", rpc_->url()));
  SigningContext ctx;
  ctx.spec_version = ci.spec_version;
  ctx.tx_version = ci.tx_version;
  ctx.genesis = ci.genesis;
  ctx.nonce = nonce;
  if (opts_.immortal) {
    ctx.era_block_hash = ci.genesis;
  } else {
    ctx.era = Era::mortal(opts_.era_period, best_number);
    ctx.era_block_hash = *hash32_from_hex(ctx.era.birth_block == best_number ? best : block_hash(ctx.era.birth_block));
  }
  SendMessageCall call{program, Bytes(payload.begin(), payload.end()), gas, 0, false};
  Bytes xt = build_signed(md, signer, encode_send_message(md, call), ctx);
  Hash32 xt_hash = extrinsic_hash(xt);

  progress(fmt::format("submitting {} (nonce {}, {})", to_hex(xt_hash), nonce,
                       ctx.era.immortal ? std::string("immortal")
                                        : fmt::format("era {}@{}", ctx.era.period, ctx.era.birth_block)));
  (void)rpc_->call("author_submitExtrinsic", json::array({to_hex(xt)}));
  try {
    return await_reply(signer, program, xt_hash, best_number, gas);
  } catch (const UnreachableError& e) {
    // The node has the extrinsic: say so, or the user may send it again and act twice.
    throw UnreachableError(fmt::format("{}; extrinsic {} was submitted before that and may still be included: check "
                                       "(e.g. `p2pstream events`) before sending again",
                                       e.what(), to_hex(xt_hash)));
  }
}

chain::Receipt GearTransport::await_reply(const keys::Keypair& signer, const chain::ProgramId& program,
                                          const Hash32& xt_hash, std::uint64_t best_number, std::uint64_t gas) {
  const auto& md = metadata();
  auto deadline = Clock::now() + opts_.timeout;
  Inclusion inc = wait_for_inclusion(xt_hash, best_number, deadline);
  progress(fmt::format("included in block #{} ({})", inc.number, inc.hash));

  auto events = events_at(inc.hash);
  if (auto failure = extrinsic_failure(md, events, inc.index))
    throw RuntimeError(fmt::format("block #{} included the extrinsic but it failed: {}", inc.number, *failure));
  auto msg_id = queued_message(events, inc.index, signer.public_key(), program);
  if (!msg_id)
    throw RuntimeError(fmt::format("block #{} included the extrinsic but queued no Gear message for it", inc.number));

  chain::Receipt r;
  r.block_number = inc.number;
  r.block_hash = inc.hash;
  r.block_time_ms = inc.time_ms ? *inc.time_ms : block_time_ms(inc.hash);
  r.message_id = *msg_id;
  r.gas_limit = gas;
  r.fee = fee_paid(events, inc.index);

  // The reply usually lands in the same block; a busy queue can push it to a later one.
  auto found = find_reply(events, *msg_id, program);
  for (std::uint64_t n = inc.number; !found;) {
    std::uint64_t head = head_number();
    while (!found && n < head) found = find_reply(events_at(block_hash(++n)), *msg_id, program);
    if (found) break;
    auto now = Clock::now();
    if (now >= deadline)
      throw RuntimeError(fmt::format("block #{} queued message {} but no reply arrived within {} s (see --timeout)",
                                     inc.number, to_hex(*msg_id), secs(opts_.timeout)));
    std::this_thread::sleep_for(std::min<Clock::duration>(poll_interval(), deadline - now));
  }
  r.ok = found->ok;
  r.panic = found->panic;
  r.reply = std::move(found->payload);
  r.events = std::move(found->events);
  return r;
}

// ---- events ----

std::vector<ProgramEvent> GearTransport::program_events(const chain::ProgramId& program, std::uint64_t from,
                                                        std::uint64_t to) {
  std::vector<ProgramEvent> out;
  for (std::uint64_t n = from; n <= to && n >= from; ++n) {
    std::string hash = block_hash(n);
    for (auto& p : gear_rpc::program_events(events_at(hash), program)) out.push_back({n, hash, std::move(p)});
  }
  return out;
}

}  // namespace p2p::gear_rpc
