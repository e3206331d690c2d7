// signal/relay_tree: the shape of one stream's relay tree (who feeds whom, at what depth, who
// waits for a slot) and the placement rules; pure, no sockets or messages. The router turns the
// Moves it returns into placement/watch/error packets.
#pragma once
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "keys/ed25519.hpp"

namespace p2p::signal {

// One change to tell the clients about, in the order the packets should go out.
struct TreeMove {
  enum class Kind : std::uint8_t {
    placed,  // `key` now hangs under `parent`: the parent offers, the child learns its placement
    depth,   // `key` kept its parent but its depth changed (its ancestor moved): placement only
    queued,  // `key` has no parent and waits for a free slot: "No relay slot free"
  };
  Kind kind = Kind::placed;
  keys::PublicKey key{};
  keys::PublicKey parent{};  // placed, depth
  std::size_t depth = 0;     // placed, depth (1 = fed by the root)
  bool operator==(const TreeMove&) const = default;
};
using TreeMoves = std::vector<TreeMove>;

// Placement: a member goes under the attached member with a free slot of least depth, the root
// counted first, ties broken by join order. A member that leaves takes nobody with it: each of
// its children is re-placed with its own subtree hanging under it unchanged. A member with
// nowhere to go waits in a FIFO queue (detached, its subtree with it) and is placed as soon as a
// slot frees; a queued member that cannot be placed yet does not hold back the ones behind it.
class RelayTree {
 public:
  // root_slots: how many members the root feeds directly; 0 = no limit.
  RelayTree(const keys::PublicKey& root, std::uint32_t root_slots);

  const keys::PublicKey& root() const { return root_; }
  std::uint32_t root_slots() const { return root_slots_; }

  // A new member that can feed `slots` children (0 = a leaf). It must not be in the tree yet.
  TreeMoves join(const keys::PublicKey& key, std::uint32_t slots);
  // The member leaves (closed, stopped watching, missed pings). Its children are re-placed.
  TreeMoves leave(const keys::PublicKey& key);
  // `key` reports that its link from its parent `parent` failed: it moves elsewhere, neither under
  // `parent` (until it is placed again) nor inside its own subtree. Empty, and nothing changes,
  // when `parent` is not (or no longer) its parent.
  TreeMoves fail(const keys::PublicKey& key, const keys::PublicKey& parent);

  bool contains(const keys::PublicKey& key) const { return nodes_.count(key) > 0; }
  bool queued(const keys::PublicKey& key) const;
  // Attached to the root through its ancestors (not queued, nor under a queued member).
  bool attached(const keys::PublicKey& key) const;
  std::optional<keys::PublicKey> parent_of(const keys::PublicKey& key) const;
  std::size_t depth_of(const keys::PublicKey& key) const;  // last depth told; 0 for the root
  std::vector<keys::PublicKey> children_of(const keys::PublicKey& key) const;  // in join order
  std::size_t size() const { return nodes_.size(); }  // members, the root not counted
  std::size_t queue_size() const { return queue_.size(); }
  std::size_t max_depth() const;  // of attached members

  // Every structural invariant (parents exist, no cycles, slots respected, depths consistent,
  // queue = parentless members). Empty when all hold; else what is wrong, for tests and fuzzing.
  std::string check() const;

 private:
  struct Node {
    std::uint64_t seq = 0;  // join order, for ties
    std::uint32_t slots = 0;
    std::optional<keys::PublicKey> parent;  // nullopt: queued
    std::size_t depth = 0;
    std::vector<keys::PublicKey> children;  // in the order they were attached
    std::set<keys::PublicKey> avoid;        // parents whose link failed, until placed again
  };

  // Attached members with a free slot, best first: least depth, then join order (the root first).
  std::vector<keys::PublicKey> free_parents() const;
  // The first of `candidates` that `key` may hang under (not itself, its subtree or avoided).
  std::optional<keys::PublicKey> pick(const keys::PublicKey& key, const std::vector<keys::PublicKey>& candidates) const;
  bool is_ancestor_or_self(const keys::PublicKey& ancestor, keys::PublicKey key) const;
  std::vector<keys::PublicKey>& children(const keys::PublicKey& key);
  void attach(TreeMoves& out, const keys::PublicKey& key, const keys::PublicKey& parent);
  void detach(const keys::PublicKey& key);
  void place_or_queue(TreeMoves& out, const keys::PublicKey& key);
  void drain(TreeMoves& out);

  keys::PublicKey root_;
  std::uint32_t root_slots_;
  std::vector<keys::PublicKey> root_children_;
  std::map<keys::PublicKey, Node> nodes_;
  std::deque<keys::PublicKey> queue_;
  std::uint64_t next_seq_ = 0;
};

}  // namespace p2p::signal
