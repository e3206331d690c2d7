// media/relay_keyframes: when a relaying watcher passes its children's keyframe requests
// (PLI/FIR) on to its own parent. Pure: the caller supplies the clock and does the sending.
#pragma once
#include <cstdint>

namespace p2p::media {

// At most one request per min_gap: one that comes sooner is held and sent when the gap is over,
// so no child is forgotten, and a burst from many children becomes a single request upstream.
class KeyframeGate {
 public:
  enum class Verdict {
    send_now,    // send one upstream now
    send_later,  // schedule one after delay_us, then call sent()
    held,        // one is already scheduled; nothing to do
  };
  struct Decision {
    Verdict verdict = Verdict::send_now;
    std::int64_t delay_us = 0;
  };

  explicit KeyframeGate(std::int64_t min_gap_us) : min_gap_us_(min_gap_us) {}

  Decision request(std::int64_t now_us);
  // The scheduled request is being sent now.
  void sent(std::int64_t now_us);
  // A new parent: the next request goes out at once, whatever was sent to the old one.
  void reset();

  std::uint64_t requests_sent() const { return sent_; }

 private:
  std::int64_t min_gap_us_;
  std::int64_t last_us_ = 0;
  bool ever_ = false;
  bool pending_ = false;
  std::uint64_t sent_ = 0;
};

}  // namespace p2p::media
