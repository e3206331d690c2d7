#include "session/session.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <termios.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>

#include "vara_metadata/embedded.hpp"
#include "gear_rpc/gear_transport.hpp"
#include "ledger/ledger.hpp"
#include "util/error.hpp"
#include "w3b/messages.hpp"

namespace p2p::session {
namespace {

// --offline: nothing can be read, so GetState answers an empty program and the CLI warns about what the
// message will then do; sending goes through Session::sign_offline instead.
class OfflineTransport : public chain::Transport {
 public:
  chain::Receipt send(const keys::Keypair&, const chain::ProgramId&, ByteView) override {
    throw UsageError("--offline sends nothing: it prints the signed extrinsic");
  }
  Bytes query(const chain::ProgramId&, ByteView payload) override {
    Bytes get_state = w3b::encode_query(w3b::GetState{});
    if (std::equal(payload.begin(), payload.end(), get_state.begin(), get_state.end()))
      return w3b::encode_state_reply(w3b::ProgramState{});
    throw UsageError("--offline cannot read chain state; drop --offline to query a node");
  }
  std::string describe() const override { return "offline (nothing is sent)"; }
};

metadata::Metadata offline_metadata(const std::optional<std::string>& file) {
  if (!file) return metadata::Metadata::parse(vara_metadata::embedded());
  std::ifstream in(*file, std::ios::binary);
  if (!in) throw UsageError(fmt::format("--metadata {}: cannot read the file", *file));
  Bytes blob{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  try {
    return metadata::Metadata::parse(blob);
  } catch (const Error& e) {
    throw UsageError(fmt::format("--metadata {}: not runtime metadata as state_getMetadata returns it ({})", *file,
                                 e.what()));
  }
}

std::string shown(const std::optional<std::string>& v) { return v ? "'" + *v + "'" : std::string("cleared"); }

}  // namespace

std::vector<std::string> offline_warnings(const w3b::Command& cmd) {
  std::vector<std::string> out;
  if (const auto* p = std::get_if<w3b::EditProfile>(&cmd)) {
    out.push_back(fmt::format(
        "--offline cannot read your profile, so the message sets every field: name {}, surname {}, image {}, "
        "time zone {} (on an existing profile the deployed program then copies the image link into the time zone)",
        shown(p->name), shown(p->surname), shown(p->img_link), shown(p->time_zone)));
  } else if (const auto* e = std::get_if<w3b::EditStream>(&cmd); e && !e->description) {
    out.push_back(
        "--offline cannot read the stream, and EditStream always replaces the description: this message clears it "
        "(give --description to keep one)");
  } else if (const auto* s = std::get_if<w3b::Subscribe>(&cmd)) {
    out.push_back(fmt::format(
        "--offline cannot check your subscriptions: if you already follow {}, the program stores a second "
        "subscription",
        keys::ss58_encode(s->account_id)));
  }
  return out;
}

std::optional<std::string> prompt_secret(const std::string& prompt) {
  int fd = ::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  termios old{};
  bool have_tty = ::tcgetattr(fd, &old) == 0;
  if (have_tty) {
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(fd, TCSAFLUSH, &quiet);
  }
  (void)!::write(fd, prompt.data(), prompt.size());
  std::string line;
  char c;
  while (::read(fd, &c, 1) == 1 && c != '\n') line += c;
  (void)!::write(fd, "\n", 1);
  if (have_tty) ::tcsetattr(fd, TCSAFLUSH, &old);
  ::close(fd);
  return line;
}

keystore::PassphraseSource passphrase_source() {
  return [](const std::string& key, bool confirm) -> std::optional<std::string> {
    if (const char* env = std::getenv("P2PSTREAM_PASSPHRASE")) return std::string(env);
    if (!confirm) {
      auto p = prompt_secret(fmt::format("Passphrase for key '{}': ", key));
      return p;
    }
    auto first = prompt_secret(fmt::format("New passphrase for key '{}' (empty for none): ", key));
    if (!first || first->empty()) return std::nullopt;
    auto again = prompt_secret("Repeat the passphrase: ");
    if (!again || *again != *first) throw UsageError("the passphrases do not match; nothing was written");
    return first;
  };
}

Session::Session(config::Paths paths, Overrides flags)
    : paths_(std::move(paths)),
      flags_(std::move(flags)),
      settings_(config::Settings::load(paths_.config_file())),
      keystore_(paths_.keys_dir()) {}

Session::~Session() = default;

std::string Session::endpoint() const {
  std::string e = flags_.endpoint ? *flags_.endpoint : settings_.get("endpoint").value_or("ledger");
  config::check_value("endpoint", e);
  return e;
}

chain::ProgramId Session::program_id() const {
  if (offline()) {
    auto p = flags_.program ? flags_.program : settings_.get("program");
    if (!p) throw UsageError("--offline needs --program 0x... (the program id on the chain you sign for)");
    config::check_value("program", *p);
    return *hash32_from_hex(*p);
  }
  if (endpoint() == "ledger") {
    auto id = ledger::Ledger::program_id();
    if (auto p = flags_.program; p && hash32_from_hex(*p) != id)
      throw UsageError(fmt::format("the embedded ledger hosts one program, {}; drop --program or give --endpoint",
                                   to_hex(id)));
    return id;
  }
  auto p = flags_.program ? flags_.program : settings_.get("program");
  if (!p) throw UsageError("no program id: pass --program 0x... or run `p2pstream config set program 0x...`");
  config::check_value("program", *p);
  return *hash32_from_hex(*p);
}

chain::Transport& Session::transport() {
  if (!transport_) {
    auto e = endpoint();
    if (offline()) {
      transport_ = std::make_unique<OfflineTransport>();
    } else if (e == "ledger") {
      transport_ = std::make_unique<ledger::LedgerTransport>(paths_.ledger_db());
    } else {
      gear_rpc::GearOptions o;
      o.finalized = flags_.send.finalized;
      if (auto t = flags_.send.timeout_s) {
        if (!(*t > 0) || *t > 86400) throw UsageError("--timeout must be between 0 and 86400 seconds");
        o.timeout = std::chrono::milliseconds(static_cast<std::int64_t>(*t * 1000));
      }
      o.gas_limit = flags_.send.gas;
      o.immortal = flags_.send.offline_params.era == "immortal";
      o.progress = flags_.progress;
      transport_ = gear_rpc::GearTransport::open(e, std::move(o));
    }
  }
  return *transport_;
}

void Session::check_offline() const {
  gear_rpc::OfflineParams p = flags_.send.offline_params;
  p.gas = flags_.send.gas;
  (void)gear_rpc::offline_context(p);
  (void)program_id();
}

gear_rpc::OfflineExtrinsic Session::sign_offline(const keys::Keypair& signer, ByteView payload) {
  check_offline();
  gear_rpc::OfflineParams p = flags_.send.offline_params;
  p.gas = flags_.send.gas;
  return gear_rpc::sign_offline(offline_metadata(flags_.send.metadata_file), signer, program_id(), payload, p);
}

std::string Session::account_name() const {
  if (flags_.account) return *flags_.account;
  if (auto a = settings_.get("account")) return *a;
  throw UsageError("no account: pass --account NAME or run `p2pstream config set account NAME` (see `p2pstream key list`)");
}

keys::Keypair Session::signer() { return keystore_.load(account_name(), passphrase_source()); }

}  // namespace p2p::session
