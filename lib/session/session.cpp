#include "session/session.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <termios.h>
#include <unistd.h>

#include <cstdlib>

#include "ledger/ledger.hpp"
#include "util/error.hpp"

namespace p2p::session {
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
    if (e != "ledger")
      throw UsageError(fmt::format(
          "endpoint '{}': this build reaches only the embedded ledger; Gear JSON-RPC endpoints are not available yet "
          "(use --endpoint ledger)",
          e));
    transport_ = std::make_unique<ledger::LedgerTransport>(paths_.ledger_db());
  }
  return *transport_;
}

std::string Session::account_name() const {
  if (flags_.account) return *flags_.account;
  if (auto a = settings_.get("account")) return *a;
  throw UsageError("no account: pass --account NAME or run `p2pstream config set account NAME` (see `p2pstream key list`)");
}

keys::Keypair Session::signer() { return keystore_.load(account_name(), passphrase_source()); }

}  // namespace p2p::session
