// util/error: the one error type every module throws for expected failures.
// The CLI edge catches it, prints the message and exits with the code.
#pragma once
#include <stdexcept>
#include <string>

namespace p2p {

// Exit codes, as documented in ARCHITECTURE.md and p2pstream(1).
enum class Exit : int {
  ok = 0,
  runtime = 1,      // something failed at run time
  usage = 2,        // the user's input is wrong
  refused = 3,      // the program (panic) or the server refused
  unreachable = 4,  // the node or server could not be reached
};

class Error : public std::runtime_error {
 public:
  Error(Exit code, std::string message) : std::runtime_error(std::move(message)), code_(code) {}
  Exit code() const noexcept { return code_; }

 private:
  Exit code_;
};

// Shorthands that read well at the throw site.
struct UsageError : Error {
  explicit UsageError(std::string m) : Error(Exit::usage, std::move(m)) {}
};
struct RuntimeError : Error {
  explicit RuntimeError(std::string m) : Error(Exit::runtime, std::move(m)) {}
};
struct RefusedError : Error {
  explicit RefusedError(std::string m) : Error(Exit::refused, std::move(m)) {}
};
struct UnreachableError : Error {
  explicit UnreachableError(std::string m) : Error(Exit::unreachable, std::move(m)) {}
};

}  // namespace p2p
