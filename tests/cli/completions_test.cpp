// Shell completions and the man page against the binary's own --help: the
// generated files must be current, mention every command and flag (and no
// flag that does not exist), parse in their shells, and complete for real.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <regex>
#include <set>
#include <sstream>

#include "harness.hpp"

extern char** environ;

namespace {
namespace fs = std::filesystem;
using p2p::test::Home;

const fs::path kSource = P2P_SOURCE_DIR;
const fs::path kCompletions = kSource / "completions";
const fs::path kManPage = kSource / "man/p2pstream.1";

struct Exec {
  int code = -1;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string search_path() {
  const char* p = std::getenv("PATH");
  return std::string(p && *p ? p : "") + ":/usr/local/bin:/usr/bin:/bin";
}

// The full path of an executable on PATH, or "" when there is none.
std::string find_program(const std::string& name) {
  std::stringstream dirs(search_path());
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    fs::path cand = fs::path(dir) / name;
    if (::access(cand.c_str(), X_OK) == 0 && fs::is_regular_file(cand)) return cand.string();
  }
  return "";
}

// Runs argv[0] (a full path) with a clean environment rooted in home; output goes
// through files so a chatty child can never block on a full pipe.
Exec exec(const std::vector<std::string>& argv, const Home& home, const std::map<std::string, std::string>& extra = {}) {
  std::map<std::string, std::string> env = {
      {"HOME", home.dir().string()},
      {"XDG_CONFIG_HOME", (home.dir() / "config").string()},
      {"XDG_DATA_HOME", (home.dir() / "data").string()},
      {"PATH", search_path()},
      {"TZ", "UTC"},
      {"NO_COLOR", "1"},
      {"LANG", "C.UTF-8"},
      {"P2PSTREAM_PASSPHRASE", ""},
  };
  for (const auto& [k, v] : extra) env[k] = v;
  std::vector<std::string> env_strs;
  for (const auto& [k, v] : env) env_strs.push_back(k + "=" + v);
  std::vector<char*> envp, args;
  for (auto& s : env_strs) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  for (auto& s : argv_copy) args.push_back(s.data());
  args.push_back(nullptr);

  const fs::path out = home.dir() / "exec.out", err = home.dir() / "exec.err";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);  // no terminal: nothing may prompt
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, args[0], &fa, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  Exec r;
  if (rc != 0) {
    r.err = std::string("posix_spawn ") + argv[0] + ": " + std::strerror(rc);
    return r;
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

// Lines of one CLI11 help section ("Options:", "Subcommands:"), up to the blank line after it.
std::vector<std::string> section(const std::string& help, const std::string& name) {
  std::vector<std::string> out;
  std::stringstream in(help);
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    if (line == name + ":") {
      inside = true;
    } else if (inside) {
      if (line.find_first_not_of(' ') == std::string::npos) break;
      out.push_back(line);
    }
  }
  return out;
}

std::set<std::string> long_flags(const std::string& text) {
  static const std::regex flag("--[a-z][a-z0-9-]*");
  std::set<std::string> out;
  for (std::sregex_iterator it(text.begin(), text.end(), flag), end; it != end; ++it) out.insert(it->str());
  return out;
}

struct HelpNode {
  std::vector<std::string> path;  // empty for the top level
  std::set<std::string> flags;    // long flags of the Options section
  std::vector<std::string> subcommands;
};

std::string joined(const std::vector<std::string>& path) {
  std::string s = "p2pstream";
  for (const auto& p : path) s += " " + p;
  return s;
}

void collect(const Home& h, std::vector<std::string> path, std::vector<HelpNode>& out) {
  auto args = path;
  args.push_back("--help");
  auto r = h.run(args);
  ASSERT_EQ(r.code, 0) << joined(path) << " --help\n" << r.err;
  HelpNode node{path, {}, {}};
  for (const auto& line : section(r.out, "Options")) {
    auto f = long_flags(line);
    node.flags.insert(f.begin(), f.end());
  }
  for (const auto& line : section(r.out, "Subcommands")) {
    std::stringstream words(line);
    std::string name;
    if (words >> name) node.subcommands.push_back(name);
  }
  out.push_back(node);
  for (const auto& sub : node.subcommands) {
    auto next = path;
    next.push_back(sub);
    collect(h, next, out);
  }
}

// Every command path of the real binary, walked through its --help output.
const std::vector<HelpNode>& help_tree() {
  static const std::vector<HelpNode> tree = [] {
    Home h;
    std::vector<HelpNode> out;
    collect(h, {}, out);
    return out;
  }();
  return tree;
}

std::set<std::string> all_help_flags() {
  std::set<std::string> out;
  for (const auto& n : help_tree()) out.insert(n.flags.begin(), n.flags.end());
  return out;
}

const std::vector<std::string> kCompletionFiles = {"p2pstream.bash", "_p2pstream", "p2pstream.fish"};

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs the bash completion function for the words (the last one is being completed).
std::vector<std::string> bash_complete(const Home& h, const std::vector<std::string>& words) {
  std::string array;
  for (const auto& w : words) array += shell_quote(w) + " ";
  std::string script = "source " + shell_quote((kCompletions / "p2pstream.bash").string()) + "\nCOMP_WORDS=(" + array +
                       ")\nCOMP_CWORD=" + std::to_string(words.size() - 1) +
                       "\n_p2pstream\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n";
  auto r = exec({find_program("bash"), "-c", script}, h);
  EXPECT_EQ(r.code, 0) << r.err;
  std::vector<std::string> out;
  std::stringstream in(r.out);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(line);
  return out;
}

bool has(const std::vector<std::string>& v, const std::string& x) { return std::find(v.begin(), v.end(), x) != v.end(); }

std::string list(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + " ";
  return s;
}

// ---------------------------------------------------------------- completions

TEST(CliCompletions, CommittedFilesAreCurrent) {
  auto python = find_program("python3");
  ASSERT_FALSE(python.empty()) << "python3 is needed to run scripts/gen-completions.py";
  Home h;
  auto r = exec({python, (kSource / "scripts/gen-completions.py").string(), "--check", P2PSTREAM_BIN,
                 kCompletions.string()},
                h);
  EXPECT_EQ(r.code, 0) << "completions are stale; regenerate with scripts/gen-completions.py\n" << r.out << r.err;
}

TEST(CliCompletions, CheckModeReportsAStaleFile) {
  auto python = find_program("python3");
  ASSERT_FALSE(python.empty());
  Home h;
  fs::path copy = h.dir() / "completions";
  fs::create_directories(copy);
  for (const auto& f : kCompletionFiles) fs::copy_file(kCompletions / f, copy / f);
  // Drop the line that completes `schedule --title` in fish; --check must notice.
  std::string fish = slurp(copy / "p2pstream.fish");
  auto at = fish.find("-l title");
  ASSERT_NE(at, std::string::npos);
  auto begin = fish.rfind('\n', at) + 1, end = fish.find('\n', at) + 1;
  fish.erase(begin, end - begin);
  std::ofstream(copy / "p2pstream.fish", std::ios::trunc) << fish;

  auto r = exec({python, (kSource / "scripts/gen-completions.py").string(), "--check", P2PSTREAM_BIN, copy.string()}, h);
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("+complete -c p2pstream"), std::string::npos) << "no diff printed:\n" << r.out;
  EXPECT_NE(r.out.find("-l title"), std::string::npos) << r.out;
}

TEST(CliCompletions, EveryCommandAndFlagIsInEachFile) {
  ASSERT_GT(help_tree().size(), 15u) << "the --help walk found too few commands";
  for (const auto& file : kCompletionFiles) {
    std::string text = slurp(kCompletions / file);
    ASSERT_FALSE(text.empty()) << file;
    auto mentioned = long_flags(text);
    for (const auto& node : help_tree()) {
      for (const auto& flag : node.flags)
        EXPECT_TRUE(mentioned.count(flag) || (file == "p2pstream.fish" && text.find("-l " + flag.substr(2)) !=
                                                                                std::string::npos))
            << file << " lacks " << flag << " of `" << joined(node.path) << "`";
      // zsh lists a subcommand as 'name:description'; the others are exercised below.
      for (const auto& sub : node.subcommands)
        EXPECT_TRUE(std::regex_search(text, std::regex(file == "_p2pstream" ? "'" + sub + ":" : "\\b" + sub + "\\b")))
            << file << " lacks subcommand " << joined(node.path) << " " << sub;
    }
  }
}

TEST(CliCompletions, NoFlagThatHelpDoesNotList) {
  auto known = all_help_flags();
  ASSERT_TRUE(known.count("--title") && known.count("--dry-run")) << "the --help walk missed flags";
  for (const auto& file : kCompletionFiles) {
    std::string text = slurp(kCompletions / file);
    for (const auto& flag : long_flags(text)) EXPECT_TRUE(known.count(flag)) << file << " mentions stale " << flag;
    // fish names long flags as `-l name` in its `complete` lines.
    std::stringstream lines(text);
    std::string line;
    std::smatch m;
    static const std::regex fish_long(" -l ([a-z][a-z0-9-]*)");
    while (std::getline(lines, line)) {
      if (line.rfind("complete ", 0) != 0 || !std::regex_search(line, m, fish_long)) continue;
      EXPECT_TRUE(known.count("--" + m[1].str())) << file << " completes stale --" << m[1];
    }
  }
}

TEST(CliCompletions, BashParses) {
  auto bash = find_program("bash");
  ASSERT_FALSE(bash.empty());
  Home h;
  auto r = exec({bash, "-n", (kCompletions / "p2pstream.bash").string()}, h);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
}

TEST(CliCompletions, ZshParses) {
  auto zsh = find_program("zsh");
  if (zsh.empty()) GTEST_FAIL() << "zsh is not installed (scripts/install-deps.sh), so completions/_p2pstream was not syntax-checked";
  Home h;
  auto r = exec({zsh, "-n", (kCompletions / "_p2pstream").string()}, h);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
}

TEST(CliCompletions, FishParses) {
  auto fish = find_program("fish");
  if (fish.empty()) GTEST_FAIL() << "fish is not installed (scripts/install-deps.sh), so completions/p2pstream.fish was not syntax-checked";
  Home h;
  auto r = exec({fish, "-n", (kCompletions / "p2pstream.fish").string()}, h);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
}

TEST(CliCompletions, BashCompletesCommandsFlagsAndValues) {
  Home h;
  EXPECT_TRUE(has(bash_complete(h, {"p2pstream", "sch"}), "schedule"));
  EXPECT_TRUE(has(bash_complete(h, {"p2pstream", "schedule", "--ti"}), "--title"));
  EXPECT_EQ(bash_complete(h, {"p2pstream", "key", ""}), (std::vector<std::string>{"new", "list", "show", "import"}));
  EXPECT_EQ(bash_complete(h, {"p2pstream", "streams", "--endpoint", ""}),
            (std::vector<std::string>{"ledger", "mainnet", "testnet", "local"}));
  EXPECT_EQ(bash_complete(h, {"p2pstream", "config", "get", ""}),
            (std::vector<std::string>{"endpoint", "program", "account", "signal"}));
  // A flag's value is never a subcommand: `profile --account <TAB>` must not offer `set`.
  auto after_account = bash_complete(h, {"p2pstream", "profile", "--account", ""});
  EXPECT_FALSE(has(after_account, "set")) << list(after_account);
  EXPECT_TRUE(bash_complete(h, {"p2pstream", "schedule", "--title", ""}).empty());
  // Once the value is given, the subcommand is back.
  EXPECT_TRUE(has(bash_complete(h, {"p2pstream", "profile", "--account", "alice", ""}), "set"));
}

TEST(CliCompletions, BashCompletesKeyNamesFromTheKeystore) {
  Home h;
  h.ok({"key", "new", "alice"});
  h.ok({"key", "new", "bob"});
  // COMP_WORDS[0] is the binary the completion asks for `key list --json`.
  auto names = bash_complete(h, {P2PSTREAM_BIN, "schedule", "--account", ""});
  EXPECT_EQ(names, (std::vector<std::string>{"alice", "bob"}));
  EXPECT_EQ(bash_complete(h, {P2PSTREAM_BIN, "config", "set", "account", "b"}), (std::vector<std::string>{"bob"}));
}

// For every command path, `p2pstream PATH --<TAB>` offers exactly the long flags its --help lists.
TEST(CliCompletions, BashOffersExactlyTheHelpFlagsOfEachCommand) {
  Home h;
  for (const auto& node : help_tree()) {
    std::vector<std::string> words = {"p2pstream"};
    words.insert(words.end(), node.path.begin(), node.path.end());
    words.push_back("--");
    auto got = bash_complete(h, words);
    std::set<std::string> offered(got.begin(), got.end());
    EXPECT_EQ(offered, node.flags) << joined(node.path);
    if (node.subcommands.empty()) continue;
    words.back() = "";
    got = bash_complete(h, words);
    for (const auto& sub : node.subcommands) EXPECT_TRUE(has(got, sub)) << joined(node.path) << " " << sub;
  }
}

TEST(CliCompletions, FishOffersExactlyTheHelpFlagsOfEachCommand) {
  auto fish = find_program("fish");
  if (fish.empty()) GTEST_FAIL() << "fish is not installed (scripts/install-deps.sh), so fish completion was not exercised";
  Home h;
  std::string script = "source " + shell_quote((kCompletions / "p2pstream.fish").string()) + "\n";
  for (const auto& node : help_tree()) {
    script += "echo '## " + joined(node.path) + "'\ncomplete -C '" + joined(node.path) + " --'\n";
    script += "echo '## " + joined(node.path) + " .'\ncomplete -C '" + joined(node.path) + " '\n";
  }
  script += "echo '## sch'\ncomplete -C 'p2pstream sch'\n";
  script += "echo '## account'\ncomplete -C 'p2pstream profile --account '\n";
  auto r = exec({fish, "-c", script}, h);
  ASSERT_EQ(r.code, 0) << r.err;
  std::map<std::string, std::set<std::string>> by_cmd;
  std::stringstream in(r.out);
  std::string line, current;
  while (std::getline(in, line)) {
    if (line.rfind("## ", 0) == 0) current = line.substr(3);
    else if (!line.empty()) by_cmd[current].insert(line.substr(0, line.find('\t')));
  }
  for (const auto& node : help_tree()) {
    EXPECT_EQ(by_cmd[joined(node.path)], node.flags) << joined(node.path);
    for (const auto& sub : node.subcommands)
      EXPECT_TRUE(by_cmd[joined(node.path) + " ."].count(sub)) << joined(node.path) << " " << sub;
  }
  EXPECT_TRUE(by_cmd["sch"].count("schedule"));
  EXPECT_FALSE(by_cmd["account"].count("set")) << "a flag's value must not complete subcommands";
}

// ---------------------------------------------------------------- man page

// The man page as a reader sees its words: roff's \- is a plain hyphen.
std::string man_text() {
  std::string t = slurp(kManPage);
  for (const std::string esc : {"\\%", "\\&"})
    for (auto at = t.find(esc); at != std::string::npos; at = t.find(esc, at)) t.erase(at, esc.size());
  for (auto at = t.find("\\-"); at != std::string::npos; at = t.find("\\-", at)) t.replace(at, 2, "-");
  return t;
}

TEST(CliManPage, MentionsEveryCommandAndFlag) {
  std::string text = man_text();
  ASSERT_FALSE(text.empty()) << kManPage;
  auto mentioned = long_flags(text);
  for (const auto& node : help_tree()) {
    for (const auto& flag : node.flags)
      EXPECT_TRUE(mentioned.count(flag)) << "man page lacks " << flag << " of `" << joined(node.path) << "`";
    for (const auto& sub : node.subcommands)
      EXPECT_TRUE(std::regex_search(text, std::regex("\\b" + sub + "\\b")))
          << "man page lacks " << joined(node.path) << " " << sub;
  }
  auto known = all_help_flags();
  for (const auto& flag : mentioned) EXPECT_TRUE(known.count(flag)) << "man page mentions stale " << flag;
}

TEST(CliManPage, HasTheRequiredSections) {
  std::string text = man_text();
  for (const std::string s : {"NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "ENVIRONMENT", "FILES", "EXIT STATUS",
                              "PROGRAM QUIRKS", "EMBEDDED LEDGER", "EXAMPLES"})
    EXPECT_TRUE(std::regex_search(text, std::regex("\n\\.SH \"?" + s + "\"?\n"))) << "no .SH " << s;
  for (const std::string v : {"P2PSTREAM_ENDPOINT", "P2PSTREAM_PROGRAM", "P2PSTREAM_ACCOUNT", "P2PSTREAM_SIGNAL",
                              "P2PSTREAM_PASSPHRASE", "P2PSTREAM_JSON_PASSWORD", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
                              "NO_COLOR", "TZ", "config.json", "ledger.db", "0600"})
    EXPECT_NE(text.find(v), std::string::npos) << v;
  // Each exit status is a tagged paragraph in EXIT STATUS.
  auto exit_at = text.find(".SH EXIT STATUS"), next = text.find("\n.SH ", exit_at + 1);
  std::string exits = text.substr(exit_at, next - exit_at);
  for (int code = 0; code <= 4; ++code)
    EXPECT_NE(exits.find(".TP\n.B " + std::to_string(code) + "\n"), std::string::npos) << "exit status " << code;
}

TEST(CliManPage, RendersWithoutWarnings) {
  Home h;
  std::string page = kManPage.string();
  if (auto groff = find_program("groff"); !groff.empty()) {
    auto r = exec({groff, "-man", "-Tutf8", "-ww", "-z", page}, h);
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.err, "") << "groff warnings";
  } else if (auto man = find_program("man"); !man.empty()) {
    auto r = exec({man, "--warnings", "-l", page}, h, {{"MANWIDTH", "80"}, {"MANPAGER", "cat"}, {"PAGER", "cat"}});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.err, "") << "man warnings";
    EXPECT_NE(r.out.find("EMBEDDED LEDGER"), std::string::npos);
  } else if (find_program("mandoc").empty()) {
    GTEST_FAIL() << "none of groff, man or mandoc is installed, so the man page was not rendered";
  }
  if (auto mandoc = find_program("mandoc"); !mandoc.empty()) {
    auto r = exec({mandoc, "-T", "lint", "-W", "warning", page}, h);
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(r.out + r.err, "") << "mandoc lint";
  }
}

}  // namespace
