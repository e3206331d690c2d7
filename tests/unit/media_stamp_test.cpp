// End-to-end check of what the broadcaster sends, through real webrtcbin on loopback: the
// latency stamp drawn before the encoder reads back after the watcher's decoder, so every frame
// arrives and decodes whole.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "media/broadcaster.hpp"
#include "media/frame_stamp.hpp"
#include "media/gst_util.hpp"
#include "media/loopback_signaller.hpp"
#include "media/watcher.hpp"

namespace p2p::media {
namespace {

using namespace std::chrono_literals;

bool wait_for(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  return iterate_until(nullptr, done, timeout);
}

// The smallest frame the stamp fits in, at a low rate, to stay light on a busy machine.
BroadcastOptions stamped_broadcast(VideoCodec codec) {
  BroadcastOptions o;
  o.video = codec;
  o.size = {416, 240};
  o.fps = 15;
  o.bitrate_kbps = 500;
  o.audio = false;
  o.stats_interval_ms = 500;
  o.before_encode = [](RawFrame& f) { write_stamp(f, std::uint64_t(monotonic_us()) & kStampMask); };
  return o;
}

class MediaStamp : public ::testing::TestWithParam<VideoCodec> {
 protected:
  void SetUp() override { ensure_gst_init(); }
  LoopbackHub hub_;
};

// x264's sliced threads once split every frame in two, and the watcher decoded P-frames with the
// top slice missing: the stamp, drawn at the top, read back in 1 frame of 16.
TEST_P(MediaStamp, TheStampSurvivesEncodingAndDecoding) {
  auto bsig = hub_.broadcaster();
  Broadcaster b(stamped_broadcast(GetParam()), *bsig);
  b.start();
  std::mutex m;
  std::vector<double> delays_ms;
  int unreadable = 0;
  std::atomic<bool> counting{false};
  WatchOptions wo;
  wo.audio = false;
  wo.latency_ms = 0;
  wo.on_video_frame = [&](const RawFrame& f) {
    auto now = std::uint64_t(monotonic_us()) & kStampMask;
    auto stamp = read_stamp(f);
    if (!counting) return;
    std::lock_guard lock(m);
    if (stamp) delays_ms.push_back(double(stamp_delta(now, *stamp)) / 1000.0);
    else ++unreadable;
  };
  auto wsig = hub_.watcher("stamps");
  Watcher w(wo, *wsig);
  w.start();
  ASSERT_TRUE(wait_for([&] { return w.frames() > 3; }, 20s)) << to_text(w.stats());
  counting = true;
  wait_for([] { return false; }, 3s);
  counting = false;
  std::lock_guard lock(m);
  ASSERT_GE(delays_ms.size() + std::size_t(unreadable), 20u) << to_text(w.stats());
  EXPECT_LE(unreadable * 20, int(delays_ms.size())) << unreadable << " unreadable of "
                                                    << delays_ms.size() + std::size_t(unreadable);
  for (double d : delays_ms) {
    EXPECT_GE(d, 0.0);
    EXPECT_LT(d, 2000.0);
  }
}

INSTANTIATE_TEST_SUITE_P(Media, MediaStamp, ::testing::Values(VideoCodec::vp8, VideoCodec::h264),
                         [](const auto& info) { return std::string(to_string(info.param)); });

}  // namespace
}  // namespace p2p::media
