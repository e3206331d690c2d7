// p2pstream signal: runs the socket.io signalling server (the w3bstreaming protocol plus the
// p2pstream challenge) until SIGINT or SIGTERM.
#include <glib-unix.h>
#include <sys/resource.h>

#include <csignal>
#include <iostream>

#include "common.hpp"
#include "signal_server/chain_source.hpp"
#include "signal_server/server.hpp"

namespace p2p::cli {
namespace {

struct SignalArgs {
  std::string listen = "127.0.0.1:3001";
  std::optional<std::string> tls_cert, tls_key;
  bool legacy = false;
  std::size_t max_frame = 64 * 1024;
  std::size_t max_conn = 10000;
  std::size_t max_conn_per_ip = 32;
  double msg_rate = 20;
  double msg_burst = 60;
  std::int64_t ping_interval = 25000;
  std::int64_t ping_timeout = 20000;
  std::size_t max_body = 1'000'000;
  std::int64_t cache_ttl = 30000;
  std::size_t max_watchers = 5000;
  std::size_t max_streams_per_broadcaster = 1;
  std::string cors = "*";
};

// Sockets are file descriptors: let the server use as many as the hard limit allows.
void raise_fd_limit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
}

gboolean quit_loop(gpointer loop) {
  g_main_loop_quit(static_cast<GMainLoop*>(loop));
  return G_SOURCE_CONTINUE;
}

void run(const Common& c, const SignalArgs& a) {
  signal_server::ServerConfig cfg;
  std::tie(cfg.host, cfg.port) = signal_server::parse_listen(a.listen);
  cfg.tls_cert = a.tls_cert;
  cfg.tls_key = a.tls_key;
  cfg.max_http_body = a.max_body;
  cfg.cors_origin = a.cors;
  cfg.session.ping_interval_ms = a.ping_interval;
  cfg.session.ping_timeout_ms = a.ping_timeout;
  cfg.session.max_payload = std::max(a.max_body, a.max_frame + 16);
  cfg.router.max_frame = a.max_frame;
  cfg.router.max_sockets = a.max_conn;
  cfg.router.max_connections_per_ip = a.max_conn_per_ip;
  cfg.router.messages_per_second = a.msg_rate;
  cfg.router.message_burst = std::max(a.msg_burst, 1.0);
  cfg.router.cache_ttl_ms = a.cache_ttl;
  cfg.router.max_watchers_per_stream = a.max_watchers;
  cfg.router.max_streams_per_broadcaster = a.max_streams_per_broadcaster;
  cfg.router.max_streams_per_socket = std::max<std::size_t>(cfg.router.max_streams_per_socket, 1);
  cfg.router.legacy_signed_msg = a.legacy;
  cfg.log_level = c.quiet ? -1 : c.verbose;

  // Checks the endpoint and program now, so a typo fails before "listening on".
  auto paths = config::default_paths();
  std::string endpoint;
  {
    session::Session s(paths, c.over);
    s.program_id();
    endpoint = s.endpoint();
  }
  raise_fd_limit();
  std::signal(SIGPIPE, SIG_IGN);

  const int verbose = c.quiet ? -1 : c.verbose;
  auto log = [verbose](int level, const std::string& line) {
    if (level <= verbose) std::cerr << "signal: " << line << '\n';
  };
  GMainLoop* loop = g_main_loop_new(nullptr, FALSE);
  {
    signal_server::Server server(cfg, signal_server::session_source(paths, c.over), nullptr, log);
    std::cout << "listening on " << server.url() << std::endl;
    info(c, fmt::format("signal: serving socket.io on {} (chain: {}{})", server.url(), endpoint,
                        a.legacy ? "; legacy signedMsg accepted" : ""));
    guint sigint = g_unix_signal_add(SIGINT, quit_loop, loop);
    guint sigterm = g_unix_signal_add(SIGTERM, quit_loop, loop);
    g_main_loop_run(loop);
    g_source_remove(sigint);
    g_source_remove(sigterm);
    auto n = server.connection_count();
    info(c, fmt::format("signal: stopping ({} connection{} open)", n, n == 1 ? "" : "s"));
  }
  g_main_loop_unref(loop);
}

}  // namespace

void register_signal(CLI::App& app, Common& c) {
  auto a = std::make_shared<SignalArgs>();
  auto* sub = app.add_subcommand("signal", "Run the signalling server (socket.io v4, w3bstreaming protocol)");
  sub->add_option("--listen", a->listen, "HOST:PORT to listen on; port 0 picks a free one")->capture_default_str();
  auto* cert = sub->add_option("--tls-cert", a->tls_cert, "PEM certificate: serve https/wss");
  auto* key = sub->add_option("--tls-key", a->tls_key, "PEM private key for --tls-cert");
  cert->needs(key);
  key->needs(cert);
  sub->add_flag("--legacy-auth", a->legacy,
                "Also accept the web app's watch signature (signedMsg/encodedId, ed25519 only); it has no nonce");
  sub->add_option("--max-frame", a->max_frame, "Largest Socket.IO packet in bytes")->capture_default_str()->check(
      CLI::Range(std::size_t{256}, std::size_t{16} << 20));
  sub->add_option("--max-conn", a->max_conn, "Most connections in all")->capture_default_str()->check(
      CLI::Range(std::size_t{1}, std::size_t{1'000'000}));
  sub->add_option("--max-conn-per-ip", a->max_conn_per_ip, "Most connections from one IP address")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1'000'000}));
  sub->add_option("--msg-rate", a->msg_rate, "Messages per second one connection may send (sustained)")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 1e6));
  sub->add_option("--msg-burst", a->msg_burst, "Messages one connection may send at once")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 1e7));
  sub->add_option("--ping-interval", a->ping_interval, "Engine.IO ping interval in ms")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{50}, std::int64_t{600000}));
  sub->add_option("--ping-timeout", a->ping_timeout, "How long to wait for a pong, in ms")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{50}, std::int64_t{600000}));
  sub->add_option("--max-body", a->max_body, "Largest polling POST body in bytes")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1024}, std::size_t{64} << 20));
  sub->add_option("--cache-ttl", a->cache_ttl, "How long chain answers are reused, in ms")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{86'400'000}));
  sub->add_option("--max-watchers", a->max_watchers, "Most watchers on one stream")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1'000'000}));
  sub->add_option("--max-streams-per-broadcaster", a->max_streams_per_broadcaster,
                  "Live streams one broadcaster may run at once")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{100'000}));
  sub->add_option("--cors-origin", a->cors, "Access-Control-Allow-Origin for polling ('' sends none)")
      ->capture_default_str();
  add_output_flags(*sub, c, false);
  sub->add_option("--endpoint", c.over.endpoint, "Chain to check streams and subscriptions on [env P2PSTREAM_ENDPOINT]");
  sub->add_option("--program", c.over.program, "W3Bstreaming program id, 0x + 64 hex [env P2PSTREAM_PROGRAM]");
  sub->footer(
      "Prints `listening on URL` first on stdout; logs go to stderr (-v per connection, -vv per frame).\n"
      "Stops cleanly on SIGINT or SIGTERM. GET /metrics (Prometheus), /healthz, /is-already-having-stream?address=ID.\n"
      "Example:\n  p2pstream signal --listen 0.0.0.0:3001 --tls-cert cert.pem --tls-key key.pem");
  sub->callback([&c, a] { run(c, *a); });
}

}  // namespace p2p::cli
