// Tests for signal/relay_tree: placement (root first, then shallowest, join order), re-placement
// of orphans with their subtrees, failed links, the FIFO slot queue, and the invariants under a
// long random sequence of joins, leaves and failures.
#include "signal/relay_tree.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

using namespace p2p;
using namespace p2p::signal;
using ::testing::ElementsAre;
using Kind = TreeMove::Kind;

namespace {

keys::PublicKey key(std::uint8_t n) {
  keys::PublicKey k{};
  k.fill(n);
  return k;
}

const keys::PublicKey R = key(0xff);  // the root (the broadcaster)

TreeMove placed(std::uint8_t k, keys::PublicKey parent, std::size_t depth) { return {Kind::placed, key(k), parent, depth}; }
TreeMove placed(std::uint8_t k, std::uint8_t parent, std::size_t depth) { return placed(k, key(parent), depth); }
TreeMove moved_depth(std::uint8_t k, std::uint8_t parent, std::size_t depth) {
  return {Kind::depth, key(k), key(parent), depth};
}
TreeMove queued(std::uint8_t k) { return {Kind::queued, key(k), {}, 0}; }

std::vector<keys::PublicKey> keys_of(std::initializer_list<std::uint8_t> ns) {
  std::vector<keys::PublicKey> out;
  for (auto n : ns) out.push_back(key(n));
  return out;
}

// 1 root with 2 direct slots and 10 relays of 2 slots each, joined 0..9.
RelayTree ten_relays() {
  RelayTree t(R, 2);
  for (std::uint8_t i = 0; i < 10; ++i) t.join(key(i), 2);
  return t;
}

}  // namespace

TEST(RelayTree, RootFirstThenShallowestInJoinOrder) {
  RelayTree t(R, 2);
  EXPECT_THAT(t.join(key(0), 2), ElementsAre(placed(0, R, 1)));
  EXPECT_THAT(t.join(key(1), 2), ElementsAre(placed(1, R, 1)));
  EXPECT_THAT(t.join(key(2), 2), ElementsAre(placed(2, 0, 2)));  // the root is full: the older depth-1 relay
  EXPECT_THAT(t.join(key(3), 2), ElementsAre(placed(3, 0, 2)));
  EXPECT_THAT(t.join(key(4), 2), ElementsAre(placed(4, 1, 2)));
  EXPECT_EQ(t.check(), "");
}

TEST(RelayTree, MaxDirectTwoAndTenRelaysOfTwoIsThreeDeep) {
  RelayTree t = ten_relays();
  EXPECT_EQ(t.check(), "");
  EXPECT_EQ(t.max_depth(), 3u);
  EXPECT_EQ(t.children_of(R), keys_of({0, 1}));
  EXPECT_EQ(t.children_of(key(0)), keys_of({2, 3}));
  EXPECT_EQ(t.children_of(key(1)), keys_of({4, 5}));
  EXPECT_EQ(t.children_of(key(2)), keys_of({6, 7}));
  EXPECT_EQ(t.children_of(key(3)), keys_of({8, 9}));
  EXPECT_TRUE(t.children_of(key(4)).empty());
  std::size_t per_depth[4] = {};
  for (std::uint8_t i = 0; i < 10; ++i) ++per_depth[t.depth_of(key(i))];
  EXPECT_EQ(per_depth[1], 2u);
  EXPECT_EQ(per_depth[2], 4u);
  EXPECT_EQ(per_depth[3], 4u);
}

TEST(RelayTree, NoRootLimitMeansAStar) {
  RelayTree t(R, 0);
  for (std::uint8_t i = 0; i < 50; ++i) EXPECT_THAT(t.join(key(i), 2), ElementsAre(placed(i, R, 1)));
  EXPECT_EQ(t.max_depth(), 1u);
  EXPECT_EQ(t.check(), "");
}

TEST(RelayTree, LeavesNeverFeedAnyone) {
  RelayTree t(R, 1);
  EXPECT_THAT(t.join(key(0), 0), ElementsAre(placed(0, R, 1)));  // a browser: no relay field
  EXPECT_THAT(t.join(key(1), 0), ElementsAre(queued(1)));
  EXPECT_THAT(t.join(key(2), 3), ElementsAre(queued(2)));
  EXPECT_TRUE(t.children_of(key(0)).empty());
  EXPECT_EQ(t.queue_size(), 2u);
  EXPECT_EQ(t.check(), "");
}

TEST(RelayTree, AnInnerLeaveRePlacesOrphansWithTheirSubtrees) {
  RelayTree t = ten_relays();
  // 0 feeds 2 {6, 7} and 3 {8, 9}. 2 takes 0's place under the root and keeps 6 and 7, which
  // move up a level; every slot at depth 1 and 2 is taken but 4's, so 3 goes there with 8 and 9.
  EXPECT_THAT(t.leave(key(0)), ElementsAre(placed(2, R, 1), moved_depth(6, 2, 2), moved_depth(7, 2, 2),
                                           placed(3, 4, 3), moved_depth(8, 3, 4), moved_depth(9, 3, 4)));
  EXPECT_EQ(t.children_of(key(2)), keys_of({6, 7}));
  EXPECT_EQ(t.children_of(key(3)), keys_of({8, 9}));
  EXPECT_EQ(t.parent_of(key(6)), key(2));
  EXPECT_EQ(t.parent_of(key(8)), key(3));
  EXPECT_EQ(t.size(), 9u);
  EXPECT_EQ(t.check(), "");
}

TEST(RelayTree, ALeafLeaveMovesNobody) {
  RelayTree t = ten_relays();
  EXPECT_TRUE(t.leave(key(9)).empty());
  EXPECT_TRUE(t.leave(key(9)).empty());  // twice, or unknown: nothing
  EXPECT_EQ(t.children_of(key(3)), keys_of({8}));
  EXPECT_EQ(t.check(), "");
}

TEST(RelayTree, AnOrphanWithNowhereToGoWaitsWithItsSubtree) {
  RelayTree t(R, 1);
  t.join(key(1), 2);  // R -> 1 -> {2 -> 4, 3 -> 5}
  t.join(key(2), 1);
  t.join(key(3), 1);
  t.join(key(4), 0);
  t.join(key(5), 0);
  ASSERT_EQ(t.parent_of(key(5)), key(3));
  // 2 gets the root's slot and keeps 4; 3 finds 2 full and 4 a leaf, so it waits, 5 still under it.
  EXPECT_THAT(t.leave(key(1)), ElementsAre(placed(2, R, 1), moved_depth(4, 2, 2), queued(3)));
  EXPECT_TRUE(t.queued(key(3)));
  EXPECT_EQ(t.parent_of(key(5)), key(3));
  EXPECT_FALSE(t.attached(key(5)));
  EXPECT_EQ(t.check(), "");
  // 4 leaves, so 2 has a slot: 3 comes back with 5 (same depths as before, so 5 hears nothing).
  EXPECT_THAT(t.leave(key(4)), ElementsAre(placed(3, 2, 2)));
  EXPECT_TRUE(t.attached(key(5)));
  EXPECT_EQ(t.depth_of(key(5)), 3u);
  EXPECT_EQ(t.check(), "");
}

TEST(RelayTree, TheQueueIsFirstInFirstOut) {
  RelayTree t(R, 1);
  t.join(key(1), 0);
  EXPECT_THAT(t.join(key(2), 0), ElementsAre(queued(2)));
  EXPECT_THAT(t.join(key(3), 0), ElementsAre(queued(3)));
  EXPECT_THAT(t.join(key(4), 0), ElementsAre(queued(4)));
  EXPECT_THAT(t.leave(key(1)), ElementsAre(placed(2, R, 1)));
  // A queued member that leaves is forgotten: 4 goes next, not 3.
  EXPECT_TRUE(t.leave(key(3)).empty());
  EXPECT_EQ(t.queue_size(), 1u);
  EXPECT_THAT(t.leave(key(2)), ElementsAre(placed(4, R, 1)));
  EXPECT_EQ(t.queue_size(), 0u);
  EXPECT_EQ(t.check(), "");
}

TEST(RelayTree, ANewcomerQueuesBehindTheWaitingOnes) {
  RelayTree t(R, 1);
  t.join(key(1), 1);                                      // R -> 1 (one slot)
  t.join(key(2), 0);                                      // 1 -> 2
  EXPECT_THAT(t.join(key(3), 0), ElementsAre(queued(3)));
  // 2 leaves: 3 takes the slot; a relay newcomer then waits, and lands when it can.
  EXPECT_THAT(t.leave(key(2)), ElementsAre(placed(3, 1, 2)));
  EXPECT_THAT(t.join(key(4), 2), ElementsAre(queued(4)));
  EXPECT_THAT(t.join(key(5), 0), ElementsAre(queued(5)));
  EXPECT_THAT(t.leave(key(3)), ElementsAre(placed(4, 1, 2), placed(5, 4, 3)));  // 4 brings its slots for 5
  EXPECT_EQ(t.check(), "");
}

TEST(RelayTree, AFailedLinkMovesTheChildAwayFromThatParentAndItsOwnSubtree) {
  RelayTree t(R, 2);
  t.join(key(1), 2);  // R -> {1 -> {3, 4}, 2}
  t.join(key(2), 2);
  t.join(key(3), 2);
  t.join(key(4), 2);
  ASSERT_EQ(t.parent_of(key(3)), key(1));
  ASSERT_EQ(t.parent_of(key(4)), key(1));  // 1 had the free slot before 3's
  // Stale: 2 is not 3's parent.
  EXPECT_TRUE(t.fail(key(3), key(2)).empty());
  // The root is full; of the depth-1 relays with a free slot, 1 failed, so 3 goes under 2.
  EXPECT_THAT(t.fail(key(3), key(1)), ElementsAre(placed(3, 2, 2)));
  EXPECT_EQ(t.check(), "");
}

TEST(RelayTree, AFailedChildNeverLandsInItsOwnSubtree) {
  RelayTree t(R, 1);
  t.join(key(1), 1);  // R -> 1 -> 2 -> 3 (3 has free slots)
  t.join(key(2), 1);
  t.join(key(3), 4);
  // 2's only free candidates are 1 (failed) and 3 (its own child): it waits, 3 still under it.
  EXPECT_THAT(t.fail(key(2), key(1)), ElementsAre(queued(2)));
  EXPECT_EQ(t.parent_of(key(3)), key(2));
  EXPECT_EQ(t.check(), "");
  // A newcomer is not held back by it: it takes 1's free slot.
  EXPECT_THAT(t.join(key(4), 1), ElementsAre(placed(4, 1, 2), placed(2, 4, 3), moved_depth(3, 2, 4)));
  EXPECT_EQ(t.check(), "");
}

TEST(RelayTree, RandomChurnKeepsEveryInvariant) {
  std::mt19937 rng(12345);
  for (int round = 0; round < 20; ++round) {
    RelayTree t(R, 1 + rng() % 3);
    std::vector<std::uint8_t> in;
    for (int step = 0; step < 300; ++step) {
      const unsigned op = rng() % 10;
      if (op < 5 || in.empty()) {
        std::uint8_t k = static_cast<std::uint8_t>(rng() % 60);
        if (t.contains(key(k))) continue;
        auto moves = t.join(key(k), rng() % 4);
        ASSERT_FALSE(moves.empty());
        in.push_back(k);
      } else if (op < 9) {
        std::size_t i = rng() % in.size();
        t.leave(key(in[i]));
        in.erase(in.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        auto k = key(in[rng() % in.size()]);
        if (auto p = t.parent_of(k)) t.fail(k, *p);
      }
      ASSERT_EQ(t.check(), "") << "round " << round << " step " << step;
      ASSERT_EQ(t.size(), in.size());
    }
  }
}
