// signal_server/chain_worker: the worker thread behind the router's chain lookups. Lookups that
// queue up while a read is running are answered together from the next single GetState.
#include "signal_server/chain_worker.hpp"

#include <atomic>
#include <chrono>
#include <deque>
#include <exception>

#include "util/error.hpp"

namespace p2p::signal_server {

struct ChainWorker::Shared {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Lookup> queue;
  bool stop = false;
  GMainContext* context = nullptr;
  Deliver deliver;  // cleared (on the main context) when the worker goes away
  std::atomic<std::uint64_t> reads{0};
  std::atomic<std::uint64_t> errors{0};
};

namespace {

struct Delivery {
  std::shared_ptr<void> keep;  // the Shared block, kept alive until this runs or is dropped
  ChainWorker::Deliver* deliver;
  std::mutex* mu;
  ChainResults results;
};

gboolean run_delivery(gpointer data) {
  auto* d = static_cast<Delivery*>(data);
  ChainWorker::Deliver fn;
  {
    std::lock_guard lock(*d->mu);
    fn = *d->deliver;
  }
  if (fn) fn(std::move(d->results));
  return G_SOURCE_REMOVE;
}

void free_delivery(gpointer data) { delete static_cast<Delivery*>(data); }

}  // namespace

ChainResults answer_from_state(const std::vector<Lookup>& lookups, const w3b::ProgramState& state) {
  ChainResults r;
  for (const auto& l : lookups) {
    if (auto* s = std::get_if<signal::LookupStream>(&l)) {
      signal::StreamAnswer a;
      a.stream_id = s->stream_id;
      if (const auto* st = state.find_stream(s->stream_id)) a.broadcaster = st->broadcaster;
      r.streams.push_back(std::move(a));
    } else {
      const auto& b = std::get<signal::LookupSubscribers>(l).broadcaster;
      signal::SubscribersAnswer a;
      a.broadcaster = b;
      if (const auto* p = state.find_user(b)) a.subscribers = p->subscribers;
      r.subscribers.push_back(std::move(a));
    }
  }
  return r;
}

ChainResults answer_failed(const std::vector<Lookup>& lookups, std::string error) {
  ChainResults r;
  r.error = std::move(error);
  for (const auto& l : lookups) {
    if (auto* s = std::get_if<signal::LookupStream>(&l)) {
      r.streams.push_back(signal::StreamAnswer{s->stream_id, false, std::nullopt});
    } else {
      signal::SubscribersAnswer a;
      a.broadcaster = std::get<signal::LookupSubscribers>(l).broadcaster;
      a.ok = false;
      r.subscribers.push_back(std::move(a));
    }
  }
  return r;
}

ChainWorker::ChainWorker(ChainSourceFactory factory, GMainContext* context, Deliver deliver, std::int64_t poll_ms)
    : shared_(std::make_shared<Shared>()), factory_(std::move(factory)), poll_ms_(poll_ms) {
  shared_->context = g_main_context_ref(context);
  shared_->deliver = std::move(deliver);
  thread_ = std::thread([this] { run(); });
}

ChainWorker::~ChainWorker() {
  {
    std::lock_guard lock(shared_->mu);
    shared_->stop = true;
    shared_->deliver = nullptr;
  }
  shared_->cv.notify_all();
  thread_.join();
  g_main_context_unref(shared_->context);
}

void ChainWorker::ask(Lookup lookup) {
  {
    std::lock_guard lock(shared_->mu);
    shared_->queue.push_back(std::move(lookup));
  }
  shared_->cv.notify_one();
}

std::uint64_t ChainWorker::reads() const { return shared_->reads.load(); }
std::uint64_t ChainWorker::errors() const { return shared_->errors.load(); }

void ChainWorker::run() {
  // A thread-default context of its own keeps any synchronous GLib I/O of the transport off
  // the server's loop.
  GMainContext* own = g_main_context_new();
  g_main_context_push_thread_default(own);
  std::unique_ptr<ChainSource> source;
  std::string open_error;
  auto open = [&] {
    if (source) return true;
    try {
      source = factory_();
      open_error.clear();
      if (poll_ms_ > 0) source->poll_changes();  // the starting point
    } catch (const std::exception& e) {
      open_error = std::string("cannot open the chain: ") + e.what();
    }
    return source != nullptr;
  };
  open();
  auto next_poll = std::chrono::steady_clock::now() + std::chrono::milliseconds(poll_ms_);
  while (true) {
    std::vector<Lookup> batch;
    {
      std::unique_lock lock(shared_->mu);
      auto ready = [&] { return shared_->stop || !shared_->queue.empty(); };
      if (poll_ms_ > 0)
        shared_->cv.wait_until(lock, next_poll, ready);
      else
        shared_->cv.wait(lock, ready);
      if (shared_->stop) break;
      batch.assign(shared_->queue.begin(), shared_->queue.end());
      shared_->queue.clear();
    }
    ChainResults results;
    bool any = false;
    if (poll_ms_ > 0 && std::chrono::steady_clock::now() >= next_poll) {
      next_poll = std::chrono::steady_clock::now() + std::chrono::milliseconds(poll_ms_);
      if (open()) {
        try {
          results.changes = source->poll_changes();
          any = results.changes.everything || !results.changes.streams.empty() ||
                !results.changes.subscribers_of.empty();
        } catch (const std::exception&) {
          results.changes.everything = true;  // unknown: fall back to fresh reads
          any = true;
        }
      }
    }
    if (!batch.empty()) {
      any = true;
      ChainResults answers;
      if (!open()) {
        answers = answer_failed(batch, open_error);
        shared_->errors.fetch_add(1);
      } else {
        try {
          shared_->reads.fetch_add(1);
          answers = answer_from_state(batch, source->state());
        } catch (const std::exception& e) {
          shared_->errors.fetch_add(1);
          answers = answer_failed(batch, std::string("chain read from ") + source->describe() + " failed: " + e.what());
          source.reset();  // reopen next time: the connection may be gone
        }
      }
      results.streams = std::move(answers.streams);
      results.subscribers = std::move(answers.subscribers);
      results.error = std::move(answers.error);
    }
    if (any) {
      auto* d = new Delivery{shared_, &shared_->deliver, &shared_->mu, std::move(results)};
      g_main_context_invoke_full(shared_->context, G_PRIORITY_DEFAULT, run_delivery, d, free_delivery);
    }
  }
  source.reset();
  g_main_context_pop_thread_default(own);
  g_main_context_unref(own);
}

}  // namespace p2p::signal_server
