// media/relay_keyframes: the rate limit on keyframe requests a relay sends to its parent.
#include "media/relay_keyframes.hpp"

namespace p2p::media {

KeyframeGate::Decision KeyframeGate::request(std::int64_t now_us) {
  if (pending_) return {Verdict::held, 0};
  std::int64_t since = now_us - last_us_;
  if (!ever_ || since >= min_gap_us_) {
    sent(now_us);
    return {Verdict::send_now, 0};
  }
  pending_ = true;
  return {Verdict::send_later, min_gap_us_ - since};
}

void KeyframeGate::sent(std::int64_t now_us) {
  ever_ = true;
  pending_ = false;
  last_us_ = now_us;
  ++sent_;
}

void KeyframeGate::reset() {
  ever_ = false;
  pending_ = false;  // a request already scheduled still goes out; one extra is harmless
}

}  // namespace p2p::media
