// p2pstream: decentralised live streaming from the command line.
// main wires the subcommands together and maps errors to exit codes.
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "common.hpp"
#include "util/error.hpp"

namespace {

bool color() { return p2p::cli::no_color_unset() && ::isatty(STDERR_FILENO); }

int fail(int code, const std::string& msg) {
  std::cerr << (color() ? "\033[31merror:\033[0m " : "error: ") << msg << '\n';
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace p2p;
  CLI::App app{"p2pstream: decentralised live streaming on the Vara network (W3Bstreaming)", "p2pstream"};
  app.require_subcommand(1);
  // Wide enough that "--upcoming Excludes: --live" and its description do not run together.
  app.get_formatter()->column_width(40);
  app.set_version_flag("--version", std::string("p2pstream ") + P2PSTREAM_VERSION);
  app.footer(
      "Chain commands use the embedded ledger unless an endpoint is configured.\n"
      "Exit codes: 0 ok, 1 failure, 2 usage error, 3 refused by the program or server, 4 unreachable.\n"
      "Run `p2pstream COMMAND --help` for a command's flags and examples; see also p2pstream(1).");

  cli::Common common;
  cli::register_key(app, common);
  cli::register_config(app, common);
  cli::register_profile(app, common);
  cli::register_schedule(app, common);
  cli::register_edit(app, common);
  cli::register_delete(app, common);
  cli::register_subscribe(app, common);
  cli::register_streams(app, common);
  cli::register_ledger(app, common);
  cli::register_events(app, common);
  cli::register_devnode(app, common);
  cli::register_signal(app, common);
  cli::register_broadcast(app, common);
  cli::register_watch(app, common);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // CLI11 prints its own message; usage errors always exit 2.
    app.exit(e);
    return static_cast<int>(Exit::usage);
  } catch (const Error& e) {
    return fail(static_cast<int>(e.code()), e.what());
  } catch (const std::exception& e) {
    return fail(static_cast<int>(Exit::runtime), e.what());
  }
  return 0;
}
