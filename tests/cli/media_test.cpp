// End to end: `p2pstream broadcast` and `p2pstream watch` through a real `p2pstream signal` on
// 127.0.0.1, with their keys, stream and subscriptions on the embedded ledger. Plus the pure
// parts of the W3bSignaller (error classes, sdpMid) and the flag checks.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "fixtures.hpp"
#include "harness.hpp"
#include "keys/ed25519.hpp"
#include "signal_client/w3b_signaller.hpp"
#include "util/bytes.hpp"

using nlohmann::json;
using p2p::test::Home;
using p2p::test::trim;
namespace fs = std::filesystem;
namespace sc = p2p::signal_client;
using namespace std::chrono_literals;

namespace {

using p2p::test::http_get;
using p2p::test::Proc;
using p2p::test::seed_hex;
using p2p::test::slurp;
using p2p::test::wait_for;
using p2p::test::World;
using Server = p2p::test::SignalServer;

// Light settings: the suite shares two cores with everything else.
std::vector<std::string> broadcast_args(const std::string& stream, const std::string& url) {
  return {"broadcast", stream, "--source", "test", "--size", "320x240", "--fps", "15", "--bitrate", "400k",
          "--signal", url, "--account", "alice", "--json"};
}
std::vector<std::string> watch_args(const std::string& stream, const std::string& url, const std::string& who) {
  return {"watch", stream, "--signal", url, "--account", who, "--stats=json"};
}

}  // namespace

TEST(CliMediaUnits, ServerErrorsAreSortedIntoNoticesAndRefusals) {
  using K = sc::ErrorKind;
  EXPECT_EQ(sc::classify_error("Stream with id 1Talk hasn't started yet"), K::not_started);
  EXPECT_EQ(sc::classify_error("No relay slot free"), K::no_slot);
  EXPECT_EQ(sc::classify_error("No free relay slot on stream 1Talk: try again later"), K::no_slot);
  EXPECT_EQ(sc::classify_error("Too many joins are waiting for the chain: try again shortly"), K::retry);
  EXPECT_EQ(sc::classify_error("Could not read stream 1 from the chain: try again"), K::retry);
  EXPECT_EQ(sc::classify_error("Challenge expired: sign the newest challenge"), K::transient);
  EXPECT_EQ(sc::classify_error("Too many messages: slow down to 20 per second"), K::transient);
  EXPECT_EQ(sc::classify_error("You aren't subscribed to this speaker"), K::refusal);
  EXPECT_EQ(sc::classify_error("Signature isn't valid"), K::refusal);
  EXPECT_EQ(sc::classify_error("Only the broadcaster of stream 1 may start it"), K::refusal);
  EXPECT_EQ(sc::classify_error(""), K::refusal);
}

TEST(CliMediaUnits, SdpMidsFollowTheMLines) {
  std::string sdp =
      "v=0\r\no=- 1 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE video0 audio1\r\n"
      "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:video0\r\na=sendonly\r\n"
      "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:audio1\r\n"
      "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";
  EXPECT_EQ(sc::sdp_mids(sdp), (std::vector<std::string>{"video0", "audio1", ""}));
  EXPECT_EQ(sc::sdp_mids("m=video 9 RTP/AVP 96\na=mid:0\n"), std::vector<std::string>{"0"});
  EXPECT_TRUE(sc::sdp_mids("v=0 offer").empty());
}

TEST(CliMedia, FlagMistakesAreUsageErrors) {
  Home h;
  struct Case {
    std::vector<std::string> args;
    const char* says;
  } cases[] = {
      {{"watch", "X", "--stats=xml"}, "--stats"},
      {{"watch", "X", "--relay", "9"}, "--relay"},
      {{"watch", "X", "--output", "a.mkv", "--null"}, "only one"},
      {{"watch", "X", "--duration", "-1"}, "--duration"},
      {{"watch", "X", "--signal", "ftp://x"}, "signal"},
      {{"broadcast", "X", "--bitrate", "2X"}, "--bitrate"},
      {{"broadcast", "X", "--video", "av1"}, "--video"},
      {{"broadcast", "X", "--size", "641x480"}, "--size"},
      {{"broadcast", "X", "--source", "webcam"}, "--source"},
      {{"broadcast", "X", "--stun", "stun.example.org"}, "--stun"},
  };
  for (const auto& c : cases) {
    auto r = h.run(c.args);
    EXPECT_EQ(r.code, 2) << c.args[2] << "\n" << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
  }
  auto help = h.run({"watch", "--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("Examples:"), std::string::npos) << help.out;
}

// The whole story: a broadcast, a recording watcher, a second watcher joining and leaving, an
// outsider refused, and the broadcaster's Ctrl-C ending everyone cleanly.
TEST(CliMedia, BroadcastToTwoWatchersRecordJoinLeaveAndStop) {
  World w;
  const std::string stream = w.schedule("now", "1h");
  Server s(w);
  ASSERT_FALSE(s.url.empty()) << s.p.both();
  const auto mkv = w.h.dir() / "bob.mkv";

  Proc b(w, "broadcast", broadcast_args(stream, s.url));
  ASSERT_TRUE(wait_for([&] { return !b.running() || b.err().find("broadcasting ") != std::string::npos; }, 20s))
      << b.both();
  ASSERT_TRUE(wait_for([&] { return http_get(s.url, "/is-already-having-stream?address=" + w.alice) == "true"; }, 10s))
      << b.both();

  auto bob_args = watch_args(stream, s.url, "bob");
  bob_args.insert(bob_args.end(), {"--output", mkv.string()});
  Proc bob(w, "bob", bob_args);
  ASSERT_TRUE(wait_for([&] { return bob.last("frames") >= 15 || !bob.running(); }, 25s)) << bob.both() << b.both();
  ASSERT_TRUE(bob.running()) << bob.both();

  // Dave joins, gets frames, and leaves; bob's frames keep coming all along. He finds the DTLS key
  // the broadcaster stored (-v says where his came from).
  const auto dtls_key = w.h.dir() / "data/p2pstream/dtls-key.pem";
  ASSERT_TRUE(fs::exists(dtls_key)) << b.both();
  EXPECT_EQ(fs::status(dtls_key).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  auto dave_args = watch_args(stream, s.url, "dave");
  dave_args.push_back("-v");
  Proc dave(w, "dave", dave_args);
  ASSERT_TRUE(wait_for([&] { return dave.last("frames_decoded") >= 15 || !dave.running(); }, 25s)) << dave.both();
  EXPECT_GT(dave.last("audio_buffers"), 0) << dave.both();
  auto dj = dave.json_lines().back();
  EXPECT_EQ(dj["depth"], 1) << dj;
  EXPECT_TRUE(dj["parent"].is_string()) << dj;
  EXPECT_EQ(dj["children"], 0) << dj;
  EXPECT_TRUE(wait_for(
      [&] {
        for (const auto& j : b.json_lines())
          if (j.value("watchers", 0) == 2 && j.value("connected", 0) == 2) return true;
        return false;
      },
      10s))
      << b.out();
  const long long bob_before_leave = bob.last("frames");
  dave.signal(SIGINT);
  EXPECT_EQ(dave.wait(10s), 0) << dave.both();
  EXPECT_NE(dave.err().find("stopped (interrupted)"), std::string::npos) << dave.err();
  EXPECT_NE(dave.err().find("DTLS key read from its file in"), std::string::npos) << dave.err();
  ASSERT_TRUE(wait_for([&] { return bob.last("frames") >= bob_before_leave + 15; }, 10s))
      << "bob's frames stalled after dave left\n" << bob.both();

  // Carol is not subscribed: refused with the server's reason.
  Proc carol(w, "carol", watch_args(stream, s.url, "carol"));
  EXPECT_EQ(carol.wait(20s), 3) << carol.both();
  EXPECT_NE(carol.err().find("You aren't subscribed to this speaker"), std::string::npos) << carol.err();
  EXPECT_TRUE(bob.running()) << bob.both();

  // The broadcaster stops on Ctrl-C; bob hears it and exits 0.
  const long long bob_frames = bob.last("frames_decoded");
  b.signal(SIGINT);
  EXPECT_EQ(b.wait(15s), 0) << b.both();
  EXPECT_EQ(bob.wait(15s), 0) << bob.both();
  EXPECT_NE(bob.err().find("the broadcaster ended the stream"), std::string::npos) << bob.err();
  auto summary = b.json_lines().back();
  EXPECT_EQ(summary["stopped"], "interrupted") << summary;
  EXPECT_GE(summary["peak_watchers"].get<int>(), 2) << summary;
  // Bob's last count may already hold every frame sent before the Ctrl-C.
  EXPECT_GE(summary["frames_sent"].get<long long>(), bob_frames) << summary;
  EXPECT_GE(bob.last("frames_decoded"), bob_frames) << bob.out();
  EXPECT_GT(bob.last("audio_buffers"), 20) << bob.out();
  EXPECT_EQ(http_get(s.url, "/is-already-having-stream?address=" + w.alice), "false");

  // The recording plays: a video and an audio stream and a duration.
  Proc disc(w, "discoverer", {mkv.string()}, "gst-discoverer-1.0");
  ASSERT_EQ(disc.wait(30s), 0) << disc.both();
  auto info = disc.out();
  EXPECT_NE(info.find("video"), std::string::npos) << info;
  EXPECT_NE(info.find("audio"), std::string::npos) << info;
  auto at = info.find("Duration: ");
  ASSERT_NE(at, std::string::npos) << info;
  EXPECT_EQ(info.find("Duration: 0:00:00.000000000"), std::string::npos) << info;
  EXPECT_GT(fs::file_size(mkv), 10000u);
  // The file starts at 0 with its first buffer, not at the pipeline's start before the
  // connection: the earliest timestamp of either track is 0.
  Proc dump(w, "gst-launch",
            {"-v", "filesrc", "location=" + mkv.string(), "!", "matroskademux", "name=d", "d.video_0", "!", "queue", "!",
             "identity", "silent=false", "!", "fakesink", "d.audio_0", "!", "queue", "!", "identity", "silent=false", "!",
             "fakesink"},
            "gst-launch-1.0");
  ASSERT_EQ(dump.wait(30s), 0) << dump.both();
  // The first timestamp of each track (identity0 is video, identity1 audio), as the demuxer gives them.
  double first[2] = {1e9, 1e9};
  const std::string& log = dump.out();
  for (auto at_pts = log.find("pts: "); at_pts != std::string::npos; at_pts = log.find("pts: ", at_pts + 5)) {
    int ph = 0, pm = 0;
    double ps = 0;
    const auto line = log.rfind('\n', at_pts) + 1;
    const bool audio = log.compare(log.find("GstIdentity:identity", line) + 20, 1, "1") == 0;
    if (std::sscanf(log.c_str() + at_pts, "pts: %d:%d:%lf", &ph, &pm, &ps) == 3)
      first[audio] = std::min(first[audio], ph * 3600 + pm * 60 + ps);
  }
  ASSERT_LT(first[0], 1e9) << "no video buffers in the recording\n" << log.substr(0, 4000);
  ASSERT_LT(first[1], 1e9) << "no audio buffers in the recording\n" << log.substr(0, 4000);
  std::cout << "recording starts: video at " << first[0] << " s, audio at " << first[1] << " s\n";
  // The muxer starts the file at its earliest first buffer (offset-to-zero). What the demuxer
  // gives back sits later by an amount not yet explained: video 4-80 ms with audio at 0 in most
  // runs, and once, under ctest -j2, both tracks late (audio 40 ms, video 80 ms); the same before
  // and after the RTCP change of 84bbea3. The bound is therefore 100 ms: a file that kept the wait
  // before the connection starts seconds late.
  EXPECT_LT(std::min(first[0], first[1]), 0.100)
      << "the recording does not start at 0: video at " << first[0] << " s, audio at " << first[1] << " s";
}

TEST(CliMedia, StreamNotStartedIsReported) {
  World w;
  const std::string stream = w.schedule("now", "1h");
  Server s(w);
  ASSERT_FALSE(s.url.empty()) << s.p.both();
  Proc now(w, "nowait", {"watch", stream, "--signal", s.url, "--account", "bob", "--no-wait"});
  Proc waits(w, "waits", {"watch", stream, "--signal", s.url, "--account", "dave", "--duration", "3"});
  EXPECT_EQ(now.wait(20s), 3) << now.both();
  EXPECT_NE(now.err().find("hasn't started yet"), std::string::npos) << now.err();
  EXPECT_EQ(waits.wait(20s), 3) << waits.both();
  EXPECT_NE(waits.err().find("hasn't started yet: waiting for it to start"), std::string::npos) << waits.err();
  EXPECT_NE(waits.err().find("(waited 3 s)"), std::string::npos) << waits.err();
}

TEST(CliMedia, AtScheduleWaitsForTheStartAndStopsAtTheEnd) {
  World w;
  Server s(w);
  ASSERT_FALSE(s.url.empty()) << s.p.both();
  {
    auto r = w.h.run({"broadcast", "nope", "--at-schedule", "--account", "alice", "--signal", s.url});
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_NE(r.err.find("no stream with id 'nope'"), std::string::npos) << r.err;
  }
  const std::string stream = w.schedule("+2s", "6s");
  {
    auto r = w.h.run({"broadcast", stream, "--at-schedule", "--account", "bob", "--signal", s.url});
    EXPECT_EQ(r.code, 3) << r.err;
    EXPECT_NE(r.err.find("not to your account"), std::string::npos) << r.err;
  }
  auto t0 = std::chrono::steady_clock::now();
  auto args = broadcast_args(stream, s.url);
  args.push_back("--at-schedule");
  Proc b(w, "broadcast", args);
  Proc bob(w, "bob", watch_args(stream, s.url, "bob"));
  ASSERT_TRUE(wait_for([&] { return b.err().find("waiting") != std::string::npos || !b.running(); }, 5s)) << b.both();
  EXPECT_EQ(b.json_lines().size(), 0u) << "no stats before the start\n" << b.both();
  EXPECT_EQ(b.wait(25s), 0) << b.both();
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 6s) << "stopped before the scheduled end";
  EXPECT_NE(b.err().find("stopped (the scheduled end)"), std::string::npos) << b.err();
  EXPECT_EQ(bob.wait(15s), 0) << bob.both();
  EXPECT_GT(bob.last("frames_decoded"), 0) << bob.both();
  // The stream has ended now: refused.
  auto r = w.h.run({"broadcast", stream, "--at-schedule", "--account", "alice", "--signal", s.url});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("already ended"), std::string::npos) << r.err;
}

namespace {

p2p::keys::Keypair keypair(unsigned char fill) {
  p2p::keys::Seed seed;
  seed.fill(fill);
  return p2p::keys::Keypair::from_seed(seed);
}

bool spin_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 8s) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    g_main_context_iteration(nullptr, FALSE);
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// What the media side of each signaller hears, as lines.
struct Log {
  std::vector<std::string> lines;
  bool has(const std::string& l) const { return std::find(lines.begin(), lines.end(), l) != lines.end(); }
  bool has_prefix(const std::string& p) const {
    return std::any_of(lines.begin(), lines.end(), [&](const std::string& l) { return l.rfind(p, 0) == 0; });
  }
  std::string dump() const {
    std::string s;
    for (const auto& l : lines) s += l + "\n";
    return s;
  }
  p2p::media::SignallerEvents events(const std::string& who) {
    p2p::media::SignallerEvents e;
    e.session_requested = [this, who](const std::string& s, const std::string&) { lines.push_back(who + " requested " + s); };
    e.remote_sdp = [this, who](const std::string& s, const p2p::media::Sdp& sdp) {
      lines.push_back(who + " " + p2p::media::to_string(sdp.type) + " from " + s);
    };
    e.remote_ice = [this, who](const std::string& s, const std::string& c, unsigned mline) {
      lines.push_back(who + " ice from " + s + " " + c + " " + std::to_string(mline));
    };
    e.session_ended = [this, who](const std::string& s) { lines.push_back(who + " ended " + s); };
    e.error = [this, who](const std::string& m) { lines.push_back(who + " error " + m); };
    e.notice = [this, who](const std::string& m) { lines.push_back(who + " notice " + m); };
    e.placement = [this, who](const std::string& p, unsigned d) {
      lines.push_back(who + " placed " + p + " " + std::to_string(d));
    };
    return e;
  }
};

sc::W3bOptions options(const std::string& url, sc::W3bRole role, unsigned char fill, const std::string& stream,
                       std::uint32_t slots) {
  sc::W3bOptions o;
  o.client.url = url;
  o.role = role;
  o.key = keypair(fill);
  o.stream_id = stream;
  o.relay_slots = slots;
  o.watch_retry_ms = 200;
  return o;
}

}  // namespace

// The relay-tree additions of the protocol, as the W3bSignaller speaks them with the real server:
// relay slots on broadcast and watch, placement, a relay parent asked to offer, relayFailed, the
// "No relay slot free" queue as a notice, and re-placement when a parent leaves.
TEST(CliMediaSignaller, RelayTreePlacementFailureAndRePlacement) {
  World w;
  const std::string stream = w.schedule("now", "1h");
  Server s(w);
  ASSERT_FALSE(s.url.empty()) << s.p.both();
  const std::string A = p2p::to_hex(keypair(0x11).public_key()), Bob = p2p::to_hex(keypair(0x22).public_key()),
                    Dave = p2p::to_hex(keypair(0x44).public_key());
  Log log;
  sc::W3bSignaller a(options(s.url, sc::W3bRole::broadcaster, 0x11, stream, 1));  // --max-direct 1
  sc::W3bSignaller bob(options(s.url, sc::W3bRole::watcher, 0x22, stream, 1));    // --relay 1
  sc::W3bSignaller dave(options(s.url, sc::W3bRole::watcher, 0x44, stream, 0));   // a leaf
  a.set_events(log.events("A"));
  bob.set_events(log.events("B"));
  dave.set_events(log.events("D"));
  a.start();
  ASSERT_TRUE(spin_until([&] { return http_get(s.url, "/is-already-having-stream?address=" + A) == "true"; }))
      << log.dump() << s.p.both();

  bob.start();
  ASSERT_TRUE(spin_until([&] { return log.has("B placed " + A + " 1") && log.has("A requested " + Bob); })) << log.dump();
  EXPECT_EQ(bob.parent(), A);
  EXPECT_EQ(bob.depth(), 1u);
  // The broadcaster's one direct slot is taken: dave goes under bob, who is asked to offer.
  dave.start();
  ASSERT_TRUE(spin_until([&] { return log.has("D placed " + Bob + " 2") && log.has("B requested " + Dave); })) << log.dump();
  EXPECT_FALSE(log.has("A requested " + Dave)) << log.dump();
  // Bob offers to dave with a real m-line, and his candidate carries the mid of that m-line.
  bob.send_sdp(Dave, {p2p::media::SdpType::offer, "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:video0\r\n"});
  ASSERT_TRUE(spin_until([&] { return log.has("D offer from " + Bob); })) << log.dump();
  dave.send_sdp(Bob, {p2p::media::SdpType::answer, "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:video0\r\n"});
  ASSERT_TRUE(spin_until([&] { return log.has("B answer from " + Dave); })) << log.dump();
  bob.add_ice(Dave, "candidate:1 1 udp 2122260223 127.0.0.1 50001 typ host", 0);
  ASSERT_TRUE(spin_until([&] { return log.has_prefix("D ice from " + Bob + " candidate:1 "); })) << log.dump();

  // Dave's connection to bob fails: the server drops dave from bob and, with no other free
  // slot (not under bob, and the broadcaster is full), queues him: a notice, not an error.
  dave.report_failed(Bob);
  ASSERT_TRUE(spin_until([&] { return log.has("B ended " + Dave) && log.has_prefix("D notice No relay slot free"); }))
      << log.dump();
  EXPECT_FALSE(log.has_prefix("D error")) << log.dump();
  EXPECT_TRUE(dave.parent().empty());
  // A late offer from the former parent is not taken.
  bob.send_sdp(Dave, {p2p::media::SdpType::offer, "v=0\r\n"});
  spin_until([] { return false; }, 500ms);
  EXPECT_EQ(std::count(log.lines.begin(), log.lines.end(), "D offer from " + Bob), 1) << log.dump();

  // Bob leaves: his slot under the broadcaster frees and the queued dave is placed there.
  bob.stop();
  ASSERT_TRUE(spin_until([&] { return log.has("D placed " + A + " 1") && log.has("A requested " + Dave); })) << log.dump();
  EXPECT_EQ(dave.parent(), A);
  a.send_sdp(Dave, {p2p::media::SdpType::offer, "v=0\r\n"});
  ASSERT_TRUE(spin_until([&] { return log.has("D offer from " + A); })) << log.dump();
  for (const auto& l : log.lines) EXPECT_EQ(l.find(" error "), std::string::npos) << l;

  // The broadcast stops: dave's session ends.
  a.stop();
  ASSERT_TRUE(spin_until([&] { return log.has("D ended " + A); })) << log.dump();
  dave.stop();
}
