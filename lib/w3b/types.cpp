// w3b/types: look-ups on the program state (the state is small, so a linear search is enough).
#include "w3b/types.hpp"

#include <algorithm>

namespace p2p::w3b {

const Stream* ProgramState::find_stream(std::string_view id) const {
  auto it = std::find_if(streams.begin(), streams.end(), [&](const auto& s) { return s.first == id; });
  return it == streams.end() ? nullptr : &it->second;
}

const Profile* ProgramState::find_user(const ActorId& who) const {
  auto it = std::find_if(users.begin(), users.end(), [&](const auto& u) { return u.first == who; });
  return it == users.end() ? nullptr : &it->second;
}

}  // namespace p2p::w3b
