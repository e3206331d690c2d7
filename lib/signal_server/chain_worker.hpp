// signal_server/chain_worker: answers the router's LookupStream / LookupSubscribers on a worker
// thread, so that a chain read (SQLite or a node over the network) never blocks the GLib loop.
// Answers come back on the server's GMainContext through g_main_context_invoke.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <glib.h>

#include "signal/router.hpp"
#include "w3b/types.hpp"

namespace p2p::signal_server {

// What changed on chain since the last poll, so cached answers can be dropped early.
struct ChainChanges {
  std::vector<std::string> streams;             // scheduled, deleted or edited
  std::vector<keys::PublicKey> subscribers_of;  // broadcasters whose subscriber set changed
  bool everything = false;                      // cannot tell; drop all cached answers
};

// The chain as the worker sees it. Created, used and destroyed on the worker thread only.
class ChainSource {
 public:
  virtual ~ChainSource() = default;
  // The program's whole state (one GetState). Throws Error when the chain cannot be read.
  virtual w3b::ProgramState state() = 0;
  // Changes since the previous call; the first call only sets the starting point.
  virtual ChainChanges poll_changes() { return {}; }
  virtual std::string describe() const = 0;
};
using ChainSourceFactory = std::function<std::unique_ptr<ChainSource>()>;

using Lookup = std::variant<signal::LookupStream, signal::LookupSubscribers>;

// One batch of results, delivered on the main context.
struct ChainResults {
  std::vector<signal::StreamAnswer> streams;
  std::vector<signal::SubscribersAnswer> subscribers;
  ChainChanges changes;
  std::string error;  // the read failed (answers carry ok=false); for the log
};

class ChainWorker {
 public:
  using Deliver = std::function<void(ChainResults)>;
  // deliver runs on `context`. poll_ms > 0 asks the source for changes that often.
  ChainWorker(ChainSourceFactory factory, GMainContext* context, Deliver deliver, std::int64_t poll_ms);
  ~ChainWorker();  // stops and joins; answers not yet delivered are dropped
  ChainWorker(const ChainWorker&) = delete;
  ChainWorker& operator=(const ChainWorker&) = delete;

  void ask(Lookup lookup);
  std::uint64_t reads() const;  // GetState calls made so far
  std::uint64_t errors() const;

 private:
  struct Shared;  // what the thread and queued deliveries share; outlives this object if needed
  void run();
  std::shared_ptr<Shared> shared_;
  ChainSourceFactory factory_;
  std::int64_t poll_ms_;
  std::thread thread_;
};

// Answers lookups from one state read; pure, so it is tested without threads.
ChainResults answer_from_state(const std::vector<Lookup>& lookups, const w3b::ProgramState& state);
ChainResults answer_failed(const std::vector<Lookup>& lookups, std::string error);

}  // namespace p2p::signal_server
