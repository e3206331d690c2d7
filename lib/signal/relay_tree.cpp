// signal/relay_tree: placement, re-placement and the slot queue of one stream's relay tree.
#include "signal/relay_tree.hpp"

#include <algorithm>
#include <limits>

namespace p2p::signal {

using keys::PublicKey;

RelayTree::RelayTree(const PublicKey& root, std::uint32_t root_slots) : root_(root), root_slots_(root_slots) {}

bool RelayTree::queued(const PublicKey& key) const {
  return std::find(queue_.begin(), queue_.end(), key) != queue_.end();
}

bool RelayTree::attached(const PublicKey& key) const {
  if (key == root_) return true;
  auto it = nodes_.find(key);
  // A walk up ends at the root, or at a queued member; the depth bounds it against cycles.
  for (std::size_t steps = 0; it != nodes_.end() && steps <= nodes_.size(); ++steps) {
    if (!it->second.parent) return false;
    if (*it->second.parent == root_) return true;
    it = nodes_.find(*it->second.parent);
  }
  return false;
}

std::optional<PublicKey> RelayTree::parent_of(const PublicKey& key) const {
  auto it = nodes_.find(key);
  return it == nodes_.end() ? std::nullopt : it->second.parent;
}

std::size_t RelayTree::depth_of(const PublicKey& key) const {
  auto it = nodes_.find(key);
  return it == nodes_.end() ? 0 : it->second.depth;
}

std::vector<PublicKey> RelayTree::children_of(const PublicKey& key) const {
  if (key == root_) return root_children_;
  auto it = nodes_.find(key);
  return it == nodes_.end() ? std::vector<PublicKey>{} : it->second.children;
}

std::vector<PublicKey>& RelayTree::children(const PublicKey& key) {
  return key == root_ ? root_children_ : nodes_.at(key).children;
}

std::size_t RelayTree::max_depth() const {
  std::size_t d = 0;
  for (const auto& [k, n] : nodes_)
    if (n.parent && attached(k)) d = std::max(d, n.depth);
  return d;
}

std::vector<PublicKey> RelayTree::free_parents() const {
  std::vector<PublicKey> out;
  if (root_slots_ == 0 || root_children_.size() < root_slots_) out.push_back(root_);
  // Walk down from the root, so only attached members are seen.
  std::vector<const PublicKey*> level;
  for (const auto& c : root_children_) level.push_back(&c);
  while (!level.empty()) {
    std::vector<std::pair<std::uint64_t, const PublicKey*>> free;
    std::vector<const PublicKey*> next;
    for (const PublicKey* k : level) {
      const Node& n = nodes_.at(*k);
      if (n.children.size() < n.slots) free.emplace_back(n.seq, k);
      for (const auto& c : n.children) next.push_back(&c);
    }
    std::sort(free.begin(), free.end());
    for (const auto& [seq, k] : free) out.push_back(*k);
    level = std::move(next);
  }
  return out;
}

bool RelayTree::is_ancestor_or_self(const PublicKey& ancestor, PublicKey key) const {
  for (std::size_t steps = 0; steps <= nodes_.size(); ++steps) {
    if (key == ancestor) return true;
    auto it = nodes_.find(key);
    if (it == nodes_.end() || !it->second.parent) return false;
    key = *it->second.parent;
  }
  return false;
}

std::optional<PublicKey> RelayTree::pick(const PublicKey& key, const std::vector<PublicKey>& candidates) const {
  const Node& n = nodes_.at(key);
  for (const auto& c : candidates) {
    if (n.avoid.count(c)) continue;
    if (c != root_ && is_ancestor_or_self(key, c)) continue;  // would make a cycle
    return c;
  }
  return std::nullopt;
}

void RelayTree::attach(TreeMoves& out, const PublicKey& key, const PublicKey& parent) {
  Node& n = nodes_.at(key);
  n.parent = parent;
  n.avoid.clear();
  n.depth = parent == root_ ? 1 : nodes_.at(parent).depth + 1;
  children(parent).push_back(key);
  if (auto q = std::find(queue_.begin(), queue_.end(), key); q != queue_.end()) queue_.erase(q);
  out.push_back({TreeMove::Kind::placed, key, parent, n.depth});
  // The subtree comes along unchanged; members whose depth changed are told it.
  std::deque<PublicKey> todo{key};
  while (!todo.empty()) {
    const PublicKey up = todo.front();
    todo.pop_front();
    const std::size_t below = nodes_.at(up).depth + 1;
    for (const auto& c : nodes_.at(up).children) {
      Node& child = nodes_.at(c);
      if (child.depth != below) {
        child.depth = below;
        out.push_back({TreeMove::Kind::depth, c, up, below});
      }
      todo.push_back(c);
    }
  }
}

void RelayTree::detach(const PublicKey& key) {
  Node& n = nodes_.at(key);
  if (!n.parent) return;
  auto& siblings = children(*n.parent);
  siblings.erase(std::remove(siblings.begin(), siblings.end(), key), siblings.end());
  n.parent.reset();
}

void RelayTree::place_or_queue(TreeMoves& out, const PublicKey& key) {
  if (auto parent = pick(key, free_parents())) return attach(out, key, *parent);
  if (!queued(key)) queue_.push_back(key);
  out.push_back({TreeMove::Kind::queued, key, {}, 0});
}

// Places queued members, oldest first, while anyone can be placed. Each placement may open new
// slots (a relay brings its own), so the scan starts over after each.
void RelayTree::drain(TreeMoves& out) {
  for (;;) {
    auto candidates = free_parents();
    if (candidates.empty()) return;
    bool placed = false;
    for (const auto& key : queue_) {
      if (auto parent = pick(key, candidates)) {
        attach(out, PublicKey(key), *parent);  // a copy: attach erases it from queue_
        placed = true;
        break;
      }
    }
    if (!placed) return;
  }
}

TreeMoves RelayTree::join(const PublicKey& key, std::uint32_t slots) {
  TreeMoves out;
  if (key == root_ || nodes_.count(key)) return out;
  Node n;
  n.seq = next_seq_++;
  n.slots = slots;
  nodes_.emplace(key, std::move(n));
  // Someone already waiting goes before a newcomer; a relay newcomer may free their way.
  if (!queue_.empty()) {
    queue_.push_back(key);
    drain(out);
    if (queued(key)) out.push_back({TreeMove::Kind::queued, key, {}, 0});
    return out;
  }
  place_or_queue(out, key);
  drain(out);
  return out;
}

TreeMoves RelayTree::leave(const PublicKey& key) {
  TreeMoves out;
  auto it = nodes_.find(key);
  if (it == nodes_.end()) return out;
  detach(key);
  if (auto q = std::find(queue_.begin(), queue_.end(), key); q != queue_.end()) queue_.erase(q);
  std::vector<PublicKey> orphans = std::move(it->second.children);
  nodes_.erase(it);
  for (const auto& o : orphans) nodes_.at(o).parent.reset();
  // The orphans were being served, so they go before the queue.
  for (const auto& o : orphans) place_or_queue(out, o);
  drain(out);
  return out;
}

TreeMoves RelayTree::fail(const PublicKey& key, const PublicKey& parent) {
  TreeMoves out;
  auto it = nodes_.find(key);
  if (it == nodes_.end() || it->second.parent != parent) return out;
  detach(key);
  it->second.avoid.insert(parent);
  place_or_queue(out, key);
  drain(out);
  return out;
}

std::string RelayTree::check() const {
  std::size_t queued_count = 0;
  for (const auto& [k, n] : nodes_) {
    if (!n.parent) {
      ++queued_count;
      if (!queued(k)) return "a parentless member is not queued";
      continue;
    }
    if (queued(k)) return "a queued member has a parent";
    const bool under_root = *n.parent == root_;
    if (!under_root && !nodes_.count(*n.parent)) return "a parent is not in the tree";
    const auto& siblings = under_root ? root_children_ : nodes_.at(*n.parent).children;
    if (std::count(siblings.begin(), siblings.end(), k) != 1) return "a member is not once among its parent's children";
    if (attached(k)) {
      const std::size_t want = under_root ? 1 : nodes_.at(*n.parent).depth + 1;
      if (n.depth != want) return "a depth is not its parent's plus one";
    }
    if (n.children.size() > n.slots) return "a member feeds more children than its slots";
    for (const auto& c : n.children)
      if (!nodes_.count(c) || nodes_.at(c).parent != k) return "a child does not name its parent";
  }
  for (const auto& c : root_children_)
    if (!nodes_.count(c) || nodes_.at(c).parent != root_) return "a root child does not name the root";
  if (root_slots_ != 0 && root_children_.size() > root_slots_) return "the root feeds more than its slots";
  if (queued_count != queue_.size()) return "the queue holds a member twice or one that left";
  // Every member is reached from the root or from a queued member: no cycle among the detached.
  std::size_t reached = 0;
  std::deque<PublicKey> todo(root_children_.begin(), root_children_.end());
  for (const auto& q : queue_) todo.push_back(q);
  while (!todo.empty() && reached <= nodes_.size()) {
    ++reached;
    const auto& n = nodes_.at(todo.front());
    todo.pop_front();
    for (const auto& c : n.children) todo.push_back(c);
  }
  if (reached != nodes_.size()) return "a member is unreachable (a cycle) or reached twice";
  // A free attached slot with a queued member that could take it breaks the "placed at once" rule.
  auto candidates = free_parents();
  for (const auto& q : queue_)
    if (pick(q, candidates)) return "a queued member could be placed";
  return {};
}

}  // namespace p2p::signal
