// signal_server/backlog: how much of what we handed to a socket has not reached the peer yet,
// from the kernel's own counters, so a client that stops reading cannot make us queue without end.
#pragma once
#include <cstdint>
#include <optional>

namespace p2p::signal_server {

// Bytes written to the kernel for fd so far: acknowledged by the peer plus still queued.
// nullopt when the kernel cannot tell (not TCP, or closed).
std::optional<std::uint64_t> kernel_bytes_taken(int fd);

// Size of a server-to-client WebSocket frame carrying `payload` bytes (RFC 6455: unmasked).
inline std::uint64_t ws_frame_size(std::uint64_t payload) {
  return payload + (payload < 126 ? 2 : payload < 65536 ? 4 : 10);
}

}  // namespace p2p::signal_server
