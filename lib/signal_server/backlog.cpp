// signal_server/backlog: TCP_INFO and SIOCOUTQ, kept apart from GLib's headers.
#include "signal_server/backlog.hpp"

#include <linux/sockios.h>
#include <netinet/in.h>
#include <linux/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstddef>

namespace p2p::signal_server {

std::optional<std::uint64_t> kernel_bytes_taken(int fd) {
  if (fd < 0) return std::nullopt;
  struct tcp_info info {};
  socklen_t len = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return std::nullopt;
  // Older kernels return a shorter struct without tcpi_bytes_acked.
  if (len < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof info.tcpi_bytes_acked) return std::nullopt;
  int queued = 0;
  if (::ioctl(fd, SIOCOUTQ, &queued) != 0 || queued < 0) return std::nullopt;
  return info.tcpi_bytes_acked + static_cast<std::uint64_t>(queued);
}

}  // namespace p2p::signal_server
