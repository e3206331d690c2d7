// signal_server/chain_source: GetState through session::Session, plus ledger-log change polling.
#include "signal_server/chain_source.hpp"

#include "ledger/ledger.hpp"
#include "util/error.hpp"
#include "w3b/client.hpp"
#include "w3b/messages.hpp"

namespace p2p::signal_server {
namespace {

class SessionSource : public ChainSource {
 public:
  SessionSource(config::Paths paths, session::Overrides overrides)
      : session_(std::move(paths), std::move(overrides)), program_(session_.program_id()) {}

  w3b::ProgramState state() override { return w3b::Client(session_.transport(), program_).state(); }

  ChainChanges poll_changes() override {
    ChainChanges out;
    auto* ledger = dynamic_cast<ledger::LedgerTransport*>(&session_.transport());
    if (!ledger) return out;  // a node: the router's cache TTL does the refreshing
    auto& l = ledger->ledger();
    if (!started_) {
      started_ = true;
      height_ = l.height();
      return out;
    }
    // Bounded per poll; a long backlog is simply "everything changed".
    constexpr std::size_t kMaxEntries = 4096;
    auto entries = l.log(height_, kMaxEntries);
    if (entries.size() == kMaxEntries) out.everything = true;
    for (const auto& e : entries) {
      height_ = std::max(height_, e.block);
      if (e.ok) collect_changes(e.payload, e.events, out);
    }
    return out;
  }

  std::string describe() const override { return session_.endpoint(); }

 private:
  session::Session session_;
  chain::ProgramId program_;
  bool started_ = false;
  std::uint64_t height_ = 0;
};

}  // namespace

void collect_changes(const Bytes& payload, const std::vector<Bytes>& events, ChainChanges& out) {
  try {
    auto cmd = w3b::decode_command(payload);
    if (auto* s = std::get_if<w3b::Subscribe>(&cmd)) out.subscribers_of.push_back(s->account_id);
    else if (auto* u = std::get_if<w3b::Unsubscribe>(&cmd)) out.subscribers_of.push_back(u->account_id);
    else if (auto* d = std::get_if<w3b::DeleteStream>(&cmd)) out.streams.push_back(d->stream_id);
    else if (auto* e = std::get_if<w3b::EditStream>(&cmd)) out.streams.push_back(e->stream_id);
    else if (std::holds_alternative<w3b::Kill>(cmd)) out.everything = true;
  } catch (const Error&) {
    out.everything = true;  // not a message we know: be safe
  }
  for (const auto& ev : events) {
    try {
      auto e = w3b::decode_event(ev);
      if (auto* s = std::get_if<w3b::StreamIsScheduled>(&e)) out.streams.push_back(s->id);
      else if (auto* d = std::get_if<w3b::StreamDeleted>(&e)) out.streams.push_back(d->id);
    } catch (const Error&) {
      out.everything = true;
    }
  }
}

ChainSourceFactory session_source(config::Paths paths, session::Overrides overrides) {
  return [paths = std::move(paths), overrides = std::move(overrides)]() -> std::unique_ptr<ChainSource> {
    return std::make_unique<SessionSource>(paths, overrides);
  };
}

}  // namespace p2p::signal_server
