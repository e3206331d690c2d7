// Relay trees in lib/media: the keyframe gate, the loopback hub's placement and healing, and
// relaying watchers in one process (broadcaster -> relay -> leaves) over real webrtcbin.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "media/broadcaster.hpp"
#include "media/gst_util.hpp"
#include "media/loopback_signaller.hpp"
#include "media/relay_keyframes.hpp"
#include "media/watcher.hpp"
#include "util/error.hpp"

namespace p2p::media {
namespace {

using namespace std::chrono_literals;

// ---- KeyframeGate (pure) ----

TEST(RelayKeyframes, PassesOnePerGapAndHoldsOneForTheRest) {
  KeyframeGate gate(300'000);
  EXPECT_EQ(gate.request(1'000'000).verdict, KeyframeGate::Verdict::send_now);
  auto later = gate.request(1'100'000);
  EXPECT_EQ(later.verdict, KeyframeGate::Verdict::send_later);
  EXPECT_EQ(later.delay_us, 200'000);
  // A burst from other children while one is scheduled adds nothing.
  EXPECT_EQ(gate.request(1'150'000).verdict, KeyframeGate::Verdict::held);
  EXPECT_EQ(gate.request(1'250'000).verdict, KeyframeGate::Verdict::held);
  gate.sent(1'300'000);
  EXPECT_EQ(gate.requests_sent(), 2u);
  EXPECT_EQ(gate.request(1'400'000).verdict, KeyframeGate::Verdict::send_later);
  gate.sent(1'600'000);
  EXPECT_EQ(gate.request(1'900'000).verdict, KeyframeGate::Verdict::send_now);
  // A new parent owes us nothing: the next request goes out at once.
  gate.reset();
  EXPECT_EQ(gate.request(1'950'000).verdict, KeyframeGate::Verdict::send_now);
  EXPECT_EQ(gate.requests_sent(), 5u);
}

// ---- the loopback hub's tree, with endpoints that only record what they are told ----

struct Recorder {
  std::unique_ptr<Signaller> sig;
  std::vector<std::string> log;
  std::vector<std::string> requested;  // sessions we were asked to serve

  Recorder(std::unique_ptr<Signaller> s) : sig(std::move(s)) {
    SignallerEvents e;
    e.session_requested = [this](const std::string& session, const std::string& peer) {
      log.push_back("requested " + peer);
      requested.push_back(session);
    };
    e.remote_sdp = [this](const std::string&, const Sdp& sdp) { log.push_back(std::string("sdp ") + to_string(sdp.type)); };
    e.session_ended = [this](const std::string& session) { log.push_back("ended " + session); };
    e.placement = [this](const std::string& parent, unsigned depth) {
      log.push_back("placement " + parent + " " + std::to_string(depth));
    };
    e.notice = [this](const std::string& m) { log.push_back("notice " + m); };
    sig->set_events(e);
  }
};

void settle() {
  iterate_until(nullptr, [] { return !g_main_context_pending(nullptr); }, 2s);
  iterate_until(nullptr, [] { return false; }, 20ms);  // anything posted by the last message
}

bool logged(const Recorder& r, const std::string& line) {
  return std::find(r.log.begin(), r.log.end(), line) != r.log.end();
}

TEST(LoopbackTree, PlacesTheShallowestFreeSlotFirstAndQueuesWhenFull) {
  ensure_gst_init();
  LoopbackHub hub;
  hub.set_max_direct(1);
  Recorder b(hub.broadcaster());
  b.sig->start();
  Recorder r1(hub.watcher("r1", 1)), r2(hub.watcher("r2", 1)), leaf(hub.watcher("leaf"));
  r1.sig->start();
  settle();
  r2.sig->start();
  settle();
  EXPECT_EQ(hub.parent_of("r1"), "broadcaster");
  EXPECT_EQ(hub.depth_of("r1"), 1u);
  EXPECT_EQ(hub.parent_of("r2"), "r1");
  EXPECT_EQ(hub.depth_of("r2"), 2u);
  EXPECT_EQ(b.log, (std::vector<std::string>{"requested r1"}));
  EXPECT_EQ(r1.log, (std::vector<std::string>{"placement broadcaster 1", "requested r2"}));
  EXPECT_EQ(r2.log, (std::vector<std::string>{"placement r1 2"}));

  // r2's one slot goes to the leaf; a second leaf finds none and waits, told so.
  leaf.sig->start();
  Recorder late(hub.watcher("late"));
  late.sig->start();
  settle();
  EXPECT_EQ(hub.parent_of("leaf"), "r2");
  EXPECT_EQ(hub.depth_of("leaf"), 3u);
  EXPECT_EQ(late.log, (std::vector<std::string>{"notice No relay slot free"}));
  EXPECT_EQ(hub.parent_of("late"), "");
  // The leaf leaves: the waiting one takes its slot at once.
  leaf.sig->stop();
  settle();
  EXPECT_EQ(hub.parent_of("late"), "r2");
  EXPECT_TRUE(logged(late, "placement r2 3"));
  EXPECT_TRUE(logged(r2, "ended " + r2.requested.front())) << "r2 is told its first child left";
}

TEST(LoopbackTree, ReplacesOrphansUnderTheirOldGrandparentAndLeavesTheirChildrenAlone) {
  ensure_gst_init();
  LoopbackHub hub;
  hub.set_max_direct(1);
  Recorder b(hub.broadcaster());
  b.sig->start();
  Recorder p(hub.watcher("p", 1)), r(hub.watcher("r", 2)), l1(hub.watcher("l1")), l2(hub.watcher("l2"));
  for (Recorder* w : {&p, &r, &l1, &l2}) {
    w->sig->start();
    settle();
  }
  ASSERT_EQ(hub.parent_of("r"), "p");
  ASSERT_EQ(hub.parent_of("l1"), "r");
  ASSERT_EQ(hub.parent_of("l2"), "r");
  std::string old_session = p.requested.at(0);
  std::size_t l1_seen = l1.log.size(), l2_seen = l2.log.size(), r_seen = r.log.size();

  p.sig->stop();  // the inner node dies
  settle();
  EXPECT_EQ(hub.parent_of("r"), "broadcaster");
  EXPECT_EQ(hub.depth_of("r"), 1u);
  // r hears of its new parent first, then the end of the old session; the broadcaster offers anew.
  std::vector<std::string> r_new(r.log.begin() + long(r_seen), r.log.end());
  EXPECT_EQ(r_new, (std::vector<std::string>{"placement broadcaster 1", "ended " + old_session}));
  EXPECT_TRUE(logged(b, "requested r"));
  // r's subtree is untouched.
  EXPECT_EQ(l1.log.size(), l1_seen);
  EXPECT_EQ(l2.log.size(), l2_seen);
  EXPECT_EQ(hub.parent_of("l1"), "r");

  // Explicit moves refuse loops and full parents.
  EXPECT_FALSE(hub.reparent("r", "l1"));
  EXPECT_FALSE(hub.reparent("l1", "broadcaster"));  // max-direct 1, taken by r
  hub.set_max_direct(2);
  EXPECT_TRUE(hub.reparent("l1", ""));
  settle();
  EXPECT_EQ(hub.parent_of("l1"), "broadcaster");
  EXPECT_TRUE(logged(l1, "placement broadcaster 1"));
}

TEST(LoopbackTree, AChildsFailureMovesItAwayFromThatParent) {
  ensure_gst_init();
  LoopbackHub hub;
  Recorder b(hub.broadcaster());
  b.sig->start();
  Recorder r(hub.watcher("r", 2)), w(hub.watcher("w"));
  r.sig->start();
  settle();
  hub.set_max_direct(1);  // the broadcaster is full now
  w.sig->start();
  settle();
  ASSERT_EQ(hub.parent_of("w"), "r");
  std::string failed = r.requested.at(0);
  hub.set_max_direct(2);
  w.sig->report_failed(failed);
  settle();
  EXPECT_EQ(hub.parent_of("w"), "broadcaster");
  EXPECT_TRUE(logged(r, "ended " + failed));
  EXPECT_TRUE(logged(w, "placement broadcaster 1"));
  EXPECT_FALSE(logged(w, "ended " + failed)) << "the child already forgot that session";
}

// ---- relaying watchers over real webrtcbin ----

BroadcastOptions small_broadcast(VideoCodec codec, unsigned keyframe_interval_s) {
  BroadcastOptions o;
  o.video = codec;
  o.size = {320, 240};
  o.fps = 15;
  o.bitrate_kbps = 400;
  o.keyframe_interval_s = keyframe_interval_s;
  o.stats_interval_ms = 500;
  return o;
}

WatchOptions relay_watch(unsigned slots) {
  WatchOptions o;
  o.stats_interval_ms = 300;
  o.relay_slots = slots;
  return o;
}

bool wait_for(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  return iterate_until(nullptr, done, timeout);
}

void pause_for(std::chrono::milliseconds d) {
  iterate_until(nullptr, [] { return false; }, d);
}

std::string describe(const Watcher& w) { return to_text(w.stats()); }

// A named watcher with its own signaller; destroying it leaves the tree.
struct Node {
  std::unique_ptr<Signaller> sig;
  std::unique_ptr<Watcher> w;
  Node(LoopbackHub& hub, const std::string& name, unsigned slots)
      : sig(hub.watcher(name, slots)), w(std::make_unique<Watcher>(relay_watch(slots), *sig)) {
    w->start();
  }
  ~Node() {
    w.reset();
    sig.reset();
  }
};

// Media codecs only: webrtcbin itself holds dtls/srtp/fec "enc" and "dec" elements.
bool is_encoder(const std::string& f) {
  static const std::vector<std::string> known{"vp8enc", "vp9enc", "x264enc", "x265enc", "openh264enc", "opusenc", "av1enc"};
  return std::find(known.begin(), known.end(), f) != known.end() || f.rfind("avenc_", 0) == 0;
}

bool is_decoder(const std::string& f) {
  static const std::vector<std::string> known{"vp8dec", "vp9dec", "openh264dec", "opusdec", "av1dec"};
  return std::find(known.begin(), known.end(), f) != known.end() || f.rfind("avdec_", 0) == 0;
}

class MediaRelay : public ::testing::TestWithParam<VideoCodec> {
 protected:
  void SetUp() override { ensure_gst_init(); }
  LoopbackHub hub_;
};

TEST_P(MediaRelay, ARelayServesTwoLeavesWithoutReencoding) {
  hub_.set_max_direct(1);
  auto bsig = hub_.broadcaster();
  Broadcaster b(small_broadcast(GetParam(), 1), *bsig);
  b.start();
  Node relay(hub_, "relay", 2);
  ASSERT_TRUE(wait_for([&] { return relay.w->frames() > 5; }, 15s)) << describe(*relay.w);
  Node l1(hub_, "l1", 0), l2(hub_, "l2", 0);
  ASSERT_TRUE(wait_for([&] { return l1.w->frames() > 20 && l2.w->frames() > 20; }, 20s))
      << describe(*l1.w) << " | " << describe(*l2.w) << " | " << describe(*relay.w);
  EXPECT_GT(l1.w->audio_buffers(), 10u) << "audio is relayed too";
  EXPECT_EQ(hub_.depth_of("l1"), 2u);
  EXPECT_EQ(hub_.parent_of("l2"), "relay");
  EXPECT_EQ(b.sessions().size(), 1u) << "the broadcaster serves only the relay";

  // No encoder anywhere in the relay: one payloader per child behind the tee.
  auto factories = relay.w->element_factories();
  for (const auto& f : factories) EXPECT_FALSE(is_encoder(f)) << f;
  EXPECT_EQ(std::count_if(factories.begin(), factories.end(), is_decoder), 2) << "our own playback: video and audio";
  const char* pay = GetParam() == VideoCodec::vp8 ? "rtpvp8pay" : "rtph264pay";
  EXPECT_EQ(std::count(factories.begin(), factories.end(), pay), 2);
  EXPECT_EQ(std::count(factories.begin(), factories.end(), "rtpopuspay"), 2);
  // h264parse on our own playback branch and in each child's payloading (SPS/PPS per access
  // unit), never in front of the tee, where it would swallow keyframe requests.
  EXPECT_EQ(std::count(factories.begin(), factories.end(), "h264parse"), GetParam() == VideoCodec::h264 ? 3 : 0);
  EXPECT_EQ(relay.w->child_sessions().size(), 2u);
  EXPECT_GT(relay.w->frames_forwarded(), 20u);

  ASSERT_TRUE(wait_for([&] { return relay.w->stats().children == 2 && l1.w->stats().frames_decoded > 20; }, 3s));
  WatchStats rs = relay.w->stats();
  EXPECT_EQ(rs.parent, "broadcaster");
  EXPECT_EQ(rs.depth, 1u);
  EXPECT_GT(rs.frames_forwarded, 20u);
  WatchStats ls = l1.w->stats();
  EXPECT_EQ(ls.parent, "relay");
  EXPECT_EQ(ls.depth, 2u);
  EXPECT_EQ(ls.children, 0u);
  EXPECT_EQ(ls.video_codec, GetParam() == VideoCodec::vp8 ? "VP8" : "H264");

  // One leaf goes; the other keeps playing and the relay drops the branch.
  l2.w->stop();
  ASSERT_TRUE(wait_for([&] { return relay.w->child_sessions().size() == 1; }, 5s));
  std::uint64_t before = l1.w->frames();
  ASSERT_TRUE(wait_for([&] { return l1.w->frames() > before + 10; }, 3s))
      << describe(*l1.w) << " | relay: " << describe(*relay.w);
}

TEST_P(MediaRelay, ALateChildGetsItsFirstFrameQuicklyDespiteLongKeyframeIntervals) {
  hub_.set_max_direct(1);
  auto bsig = hub_.broadcaster();
  Broadcaster b(small_broadcast(GetParam(), 10), *bsig);  // periodic keyframes are no help
  b.start();
  Node relay(hub_, "relay", 2);
  Node early(hub_, "early", 0);
  ASSERT_TRUE(wait_for([&] { return early.w->frames() > 15; }, 20s)) << describe(*early.w);
  pause_for(1500ms);  // well away from the broadcaster's keyframes for the relay's join
  std::uint64_t asked = relay.w->keyframes_requested();
  auto t0 = std::chrono::steady_clock::now();
  Node late(hub_, "late", 0);
  ASSERT_TRUE(wait_for([&] { return late.w->frames() > 0; }, 8s)) << describe(*late.w);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(ms, 1500) << "first decoded frame " << ms << " ms after joining a relay";
  std::printf("[ relay    ] late child: first decoded frame %lld ms after joining\n", static_cast<long long>(ms));
  // A request inside the gate's 300 ms gap is held and sent when the gap ends.
  EXPECT_TRUE(wait_for([&] { return relay.w->keyframes_requested() > asked; }, 1s))
      << "the relay asked its parent for the keyframe (" << relay.w->keyframes_requested() << " requests)";
  ASSERT_TRUE(wait_for([&] { return late.w->frames() > 10; }, 3s)) << describe(*late.w);
}

TEST_P(MediaRelay, ReparentingKeepsTheRelaysChildrenAndTheirSessions) {
  hub_.set_max_direct(1);
  auto bsig = hub_.broadcaster();
  Broadcaster b(small_broadcast(GetParam(), 2), *bsig);
  b.start();
  auto parent = std::make_unique<Node>(hub_, "parent", 1);
  ASSERT_TRUE(wait_for([&] { return parent->w->frames() > 3; }, 15s)) << describe(*parent->w);
  Node relay(hub_, "relay", 2);
  ASSERT_TRUE(wait_for([&] { return relay.w->frames() > 3; }, 15s)) << describe(*relay.w);
  Node l1(hub_, "l1", 0), l2(hub_, "l2", 0);
  ASSERT_TRUE(wait_for([&] { return l1.w->frames() > 10 && l2.w->frames() > 10; }, 20s))
      << describe(*l1.w) << " | " << describe(*l2.w);
  ASSERT_EQ(hub_.parent_of("relay"), "parent");
  ASSERT_EQ(hub_.depth_of("l1"), 3u);
  std::string relay_in = relay.w->session();
  auto children = relay.w->child_sessions();
  std::string s1 = l1.w->session(), s2 = l2.w->session();
  ASSERT_EQ(hub_.offers_to("l1"), 1u);
  ASSERT_EQ(hub_.offers_to("l2"), 1u);

  // The relay's parent dies; the hub moves the relay (and its subtree) under the broadcaster.
  auto t0 = std::chrono::steady_clock::now();
  parent.reset();
  ASSERT_TRUE(wait_for([&] { return !relay.w->session().empty() && relay.w->session() != relay_in; }, 3s));
  std::uint64_t f1 = l1.w->frames(), f2 = l2.w->frames(), fr = relay.w->frames_forwarded();
  auto left = std::chrono::milliseconds(3000) -
              std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  ASSERT_TRUE(wait_for([&] { return l1.w->frames() > f1 + 5 && l2.w->frames() > f2 + 5; }, left))
      << describe(*l1.w) << " | " << describe(*l2.w) << " | " << describe(*relay.w);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(ms, 3000);
  std::printf("[ relay    ] re-parented: children decoding again %lld ms after the parent died\n",
              static_cast<long long>(ms));
  EXPECT_GT(relay.w->frames_forwarded(), fr);
  EXPECT_EQ(hub_.parent_of("relay"), "broadcaster");
  // The children never noticed: same sessions, no new offer, still playing.
  EXPECT_EQ(relay.w->child_sessions(), children);
  EXPECT_EQ(l1.w->session(), s1);
  EXPECT_EQ(l2.w->session(), s2);
  EXPECT_EQ(hub_.offers_to("l1"), 1u);
  EXPECT_EQ(hub_.offers_to("l2"), 1u);
  EXPECT_FALSE(l1.w->ended());
  EXPECT_FALSE(relay.w->ended());
  ASSERT_TRUE(wait_for([&] { return relay.w->stats().parent == "broadcaster"; }, 2s));
  EXPECT_EQ(relay.w->stats().depth, 1u);
  EXPECT_EQ(relay.w->stats().children, 2u);
}

TEST_P(MediaRelay, RelayingWithoutDecodingCountsForwardedFrames) {
  auto bsig = hub_.broadcaster();
  Broadcaster b(small_broadcast(GetParam(), 1), *bsig);
  b.start();
  auto sig = hub_.watcher("bare", 1);
  WatchOptions o = relay_watch(1);
  o.decode = false;
  Watcher relay(o, *sig);
  relay.start();
  Node leaf(hub_, "leaf", 0);
  ASSERT_TRUE(wait_for([&] { return relay.frames() > 15 && leaf.w->frames() > 15; }, 20s))
      << describe(relay) << " | " << describe(*leaf.w);
  EXPECT_EQ(hub_.parent_of("leaf"), "broadcaster") << "no max-direct: the broadcaster takes everyone";
  EXPECT_EQ(relay.frames(), relay.frames_forwarded());
  auto factories = relay.element_factories();
  for (const auto& f : factories) {
    EXPECT_FALSE(is_decoder(f)) << f << ": nothing decodes";
    EXPECT_FALSE(is_encoder(f)) << f;
  }
}

TEST_P(MediaRelay, ALeafMovedToAnotherParentPlaysOnAndItsOldParentLetsGo) {
  hub_.set_max_direct(1);
  auto bsig = hub_.broadcaster();
  Broadcaster b(small_broadcast(GetParam(), 2), *bsig);
  b.start();
  Node relay(hub_, "relay", 1);
  Node leaf(hub_, "leaf", 0);
  ASSERT_TRUE(wait_for([&] { return leaf.w->frames() > 10; }, 20s)) << describe(*leaf.w);
  ASSERT_EQ(hub_.parent_of("leaf"), "relay");
  std::string before = leaf.w->session();
  hub_.set_max_direct(2);
  ASSERT_TRUE(hub_.reparent("leaf", ""));
  ASSERT_TRUE(wait_for([&] { return !leaf.w->session().empty() && leaf.w->session() != before; }, 3s));
  std::uint64_t f = leaf.w->frames();
  ASSERT_TRUE(wait_for([&] { return leaf.w->frames() > f + 5; }, 3s)) << describe(*leaf.w);
  EXPECT_FALSE(leaf.w->ended());
  EXPECT_EQ(hub_.offers_to("leaf"), 2u);
  ASSERT_TRUE(wait_for([&] { return relay.w->child_sessions().empty() && leaf.w->stats().depth == 1; }, 3s));
  EXPECT_EQ(leaf.w->stats().parent, "broadcaster");
  EXPECT_EQ(b.sessions().size(), 2u);
}

INSTANTIATE_TEST_SUITE_P(Media, MediaRelay, ::testing::Values(VideoCodec::vp8, VideoCodec::h264),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST(MediaRelayOptions, RefusesMoreThanEightChildren) {
  ensure_gst_init();
  LoopbackHub hub;
  auto sig = hub.watcher("greedy", 9);
  EXPECT_THROW(Watcher(relay_watch(9), *sig), UsageError);
  EXPECT_NO_THROW(Watcher(relay_watch(8), *sig));
}

}  // namespace
}  // namespace p2p::media
