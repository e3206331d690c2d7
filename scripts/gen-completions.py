#!/usr/bin/env python3
"""Generates p2pstream's shell completions (bash, zsh, fish) from the binary's own --help output.

Usage:
  gen-completions.py BIN OUTDIR          write OUTDIR/p2pstream.bash, OUTDIR/_p2pstream, OUTDIR/p2pstream.fish
  gen-completions.py --check BIN OUTDIR  regenerate into a temporary directory; exit 1 with a diff
                                         when the files in OUTDIR differ (or are missing)

The help text is CLI11's: "Positionals:", "Options:" and "Subcommands:" sections, each entry a
spec (names, TYPE, REQUIRED, Excludes: ...) followed by its description in a fixed column.
Python 3 standard library only.
"""

import difflib
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

PROG = "p2pstream"
FILES = ("p2pstream.bash", "_p2pstream", "p2pstream.fish")

# Value completions that --help cannot express. A flag missing from the help is simply unused.
ENDPOINT_NAMES = ["ledger", "mainnet", "testnet", "local"]
FLAG_VALUES = {"--endpoint": ("words", ENDPOINT_NAMES), "--account": ("keys",)}
# Per command: --json on `key import` names a keystore file instead of asking for JSON output.
PATH_FLAG_VALUES = {(("key", "import"), "--json"): ("file",)}
# Positional completions by command path and index. ("setting-value",) depends on positional 0.
POSITIONAL_VALUES = {
    ("config", "get"): [("settings",)],
    ("config", "set"): [("settings",), ("setting-value",)],
    ("config", "unset"): [("settings",)],
    ("key", "show"): [("keys",)],
}
# What `config set KEY <TAB>` offers for each setting; the others take free text.
SETTING_VALUES = {"endpoint": ("words", ENDPOINT_NAMES), "account": ("keys",)}
FALLBACK_SETTINGS = [("endpoint", ""), ("program", ""), ("account", ""), ("signal", "")]

SECTION_RE = re.compile(r"^(Options|Positionals|Subcommands):$")
NAMES_RE = re.compile(r"^-{1,2}[A-Za-z0-9?][\w-]*(,-{1,2}[A-Za-z0-9?][\w-]*)*$")
POS_NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
TYPE_RE = re.compile(r"^([A-Z][A-Z0-9_:<>]*(=\S*)?|\{[^}]*\}|\[[^\]]*\]|\.\.\.)$")
FLAG_RE = re.compile(r"^-{1,2}[A-Za-z0-9][\w-]*$")


@dataclass
class Option:
    shorts: list
    longs: list
    value: str  # CLI11's type name (TEXT, UINT, ...), or "" for a plain flag
    required: bool
    excludes: list
    desc: str

    @property
    def names(self):
        return self.shorts + self.longs


@dataclass
class Positional:
    name: str
    value: str
    required: bool
    desc: str


@dataclass
class Command:
    path: tuple
    desc: str = ""
    options: list = field(default_factory=list)
    positionals: list = field(default_factory=list)
    subcommands: list = field(default_factory=list)  # Command, in help order
    footer: list = field(default_factory=list)

    def value_flags(self):
        return [n for o in self.options if o.value for n in o.names]


class HelpFormatError(Exception):
    pass


# ---------------------------------------------------------------- parsing


def run_help(binary, path):
    with tempfile.TemporaryDirectory(prefix="p2p-completions-") as home:
        env = dict(os.environ)
        env.update({"XDG_CONFIG_HOME": os.path.join(home, "config"), "XDG_DATA_HOME": os.path.join(home, "data"),
                    "P2PSTREAM_PASSPHRASE": "", "NO_COLOR": "1", "HOME": home})
        proc = subprocess.run([binary, *path, "--help"], env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        cmd = " ".join([PROG, *path, "--help"])
        raise HelpFormatError(f"`{cmd}` exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def parse_spec(spec):
    """Splits an option spec like `--seed TEXT Excludes: --json` into parts; None if it is not one."""
    # CLI11's Range validator prints `UINT:UINT in [1 - 9]=5`; only the type and default matter here.
    tokens = re.sub(r":[A-Z]+ in \[[^\]]*\]", "", spec).split()
    if not tokens:
        return None
    first, rest = tokens[0], tokens[1:]
    if not (NAMES_RE.match(first) or POS_NAME_RE.match(first)):
        return None
    value, required, excludes, mode = "", False, [], "type"
    for t in rest:
        if t in ("Excludes:", "Needs:"):
            mode = t
        elif mode != "type" and FLAG_RE.match(t):
            if mode == "Excludes:":
                excludes.append(t)
        elif t == "REQUIRED" and mode == "type":
            required = True
        elif mode == "type" and TYPE_RE.match(t) and not required:
            value = (value + " " + t).strip()
        else:
            return None
    return first, value, required, excludes


def split_entry(line, col):
    """Returns (spec, description) of one section line; the description may be empty."""
    stripped = line.strip()
    if parse_spec(stripped):
        return stripped, ""
    if len(line) > col and line[col - 1] == " " and parse_spec(line[:col].strip()):
        return line[:col].strip(), line[col:].strip()
    raise HelpFormatError(f"cannot read this help line: {line!r}")


def description_column(lines):
    for line in lines:
        m = re.match(r"^(\s+-h,--help\s+)\S", line)
        if m:
            return len(m.group(1))
    return 30  # CLI11's default


def read_sections(text):
    """Returns ({section: [(spec, desc)]}, first description line, footer lines)."""
    lines = text.splitlines()
    col = description_column(lines)
    sections, current, entries = {}, None, None
    last_section_end = 0
    for i, line in enumerate(lines):
        m = SECTION_RE.match(line)
        if m:
            current, entries = m.group(1), []
            sections[current] = entries
            continue
        if current is None:
            continue
        if not line.strip():
            current = None
            last_section_end = i + 1
            continue
        if current == "Subcommands":
            sm = re.match(r"^\s+(\S+)(?:\s+(.*))?$", line)
            if not line.startswith("  ") or not sm:
                raise HelpFormatError(f"cannot read this subcommand line: {line!r}")
            if line[:col].strip() == "" and entries:
                entries[-1] = (entries[-1][0], (entries[-1][1] + " " + line.strip()).strip())
            else:
                entries.append((sm.group(1), (sm.group(2) or "").strip()))
            continue
        if line[:col].strip() == "" and entries:  # the description of a long spec, on its own line
            entries[-1] = (entries[-1][0], (entries[-1][1] + " " + line.strip()).strip())
        else:
            entries.append(split_entry(line, col))
    footer = lines[last_section_end:]
    desc = lines[0].strip() if lines and not lines[0].startswith("Usage:") else ""
    return sections, desc, footer


def parse_command(binary, path):
    sections, desc, footer = read_sections(run_help(binary, path))
    cmd = Command(path=tuple(path), desc=desc, footer=footer)
    for spec, text in sections.get("Options", []):
        names, value, required, excludes = parse_spec(spec)
        parts = names.split(",")
        cmd.options.append(Option([p for p in parts if not p.startswith("--")], [p for p in parts if p.startswith("--")],
                                  value, required, excludes, text))
    for spec, text in sections.get("Positionals", []):
        name, value, required, _ = parse_spec(spec)
        cmd.positionals.append(Positional(name, value, required, text))
    for name, text in sections.get("Subcommands", []):
        sub = parse_command(binary, [*path, name])
        sub.desc = text or sub.desc
        cmd.subcommands.append(sub)
    return cmd


def walk(cmd):
    yield cmd
    for sub in cmd.subcommands:
        yield from walk(sub)


def parse_settings(root):
    """The setting names and descriptions from the `Settings:` block of `config --help`."""
    config = next((c for c in walk(root) if c.path == ("config",)), None)
    lines = config.footer if config else []
    out, inside = [], False
    for line in lines:
        if line.strip() == "Settings:":
            inside = True
            continue
        if inside:
            m = re.match(r"^\s+([a-z][a-z0-9_-]*)\s+(.*)$", line)
            if not m:
                break
            out.append((m.group(1), re.sub(r"\s*\[env [^\]]*\]$", "", m.group(2))))
    if not out:
        print("gen-completions: no Settings: block in `p2pstream config --help`; using the known names",
              file=sys.stderr)
        return FALLBACK_SETTINGS
    return out


# ---------------------------------------------------------------- helpers


def value_kind(path, flag):
    return PATH_FLAG_VALUES.get((path, flag)) or FLAG_VALUES.get(flag) or ("none",)


def key_of(path):
    return " ".join(path)


def ident(path):
    return "_".join(["", *[re.sub(r"\W", "_", p) for p in path]]) if path else ""


def sq(text):
    """A POSIX single-quoted word (bash and zsh)."""
    return "'" + text.replace("'", "'\\''") + "'"


def fish_q(text):
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


HEADER = "Generated by scripts/gen-completions.py from `p2pstream --help`; do not edit by hand."


# ---------------------------------------------------------------- bash


def bash_case(fn, comment, rows):
    out = [f"# {comment}", f"{fn}() {{", "    case $1 in"]
    for key, words in rows:
        if words:
            out.append(f"        {sq(key)}) echo {sq(' '.join(words))} ;;")
    out += ["    esac", "}", ""]
    return out


def bash_words_for(kind, indent, arg="$cur"):
    pad = " " * indent
    if kind[0] == "words":
        return [f"{pad}_p2pstream_reply {sq(' '.join(kind[1]))} \"{arg}\""]
    if kind[0] == "keys":
        return [f"{pad}_p2pstream_reply \"$(__p2pstream_key_names \"$bin\")\" \"{arg}\""]
    if kind[0] == "file":
        return [f"{pad}compopt -o filenames 2>/dev/null", f"{pad}mapfile -t COMPREPLY < <(compgen -f -- \"{arg}\")"]
    return [f"{pad}COMPREPLY=()"]


def gen_bash(root, settings):
    cmds = list(walk(root))
    o = [f"# bash completion for {PROG}", f"# {HEADER}", ""]
    o += bash_case("_p2pstream_subcommands", "The subcommands of each command path (\"\" is the top level).",
                   [(key_of(c.path), [s.path[-1] for s in c.subcommands]) for c in cmds])
    o += bash_case("_p2pstream_flags", "Every flag of each command path.",
                   [(key_of(c.path), [n for opt in c.options for n in opt.names]) for c in cmds])
    o += bash_case("_p2pstream_value_flags", "The flags that take a value: the word after one is its value.",
                   [(key_of(c.path), c.value_flags()) for c in cmds])
    o += [
        "# Key names, from `p2pstream key list --json`.",
        "__p2pstream_key_names() {",
        "    command -v \"$1\" >/dev/null 2>&1 || return 0",
        "    \"$1\" key list --json 2>/dev/null | sed -n 's/^ *\"name\": *\"\\(.*\\)\",*$/\\1/p'",
        "}",
        "",
        "# Sets COMPREPLY to the words in $1 that start with $2.",
        "_p2pstream_reply() {",
        "    local IFS=$' \\t\\n'",
        "    COMPREPLY=($(compgen -W \"$1\" -- \"$2\"))",
        "}",
        "",
        "# The value of flag $2 in command path $1.",
        "_p2pstream_flag_value() {",
        "    case $1:$2 in",
    ]
    # Command-specific values first, then those a flag has wherever it appears.
    present = {(c.path, f) for c in cmds for opt in c.options if opt.value for f in opt.longs}
    for (path, flag), kind in PATH_FLAG_VALUES.items():
        if (path, flag) in present:
            o.append(f"        {sq(key_of(path) + ':' + flag)})")
            o += bash_words_for(kind, 12) + ["            ;;"]
    for flag, kind in FLAG_VALUES.items():
        if any(f == flag for _, f in present):
            o.append(f"        *:{flag})")
            o += bash_words_for(kind, 12) + ["            ;;"]
    o += ["        *) COMPREPLY=() ;;", "    esac", "}", ""]
    o += ["# Positional $2 (from 0) of command path $1; $3 is the first positional.", "_p2pstream_positional() {",
          "    case $1:$2 in"]
    for path, kinds in POSITIONAL_VALUES.items():
        for i, kind in enumerate(kinds):
            o.append(f"        {sq(key_of(path) + ':' + str(i))})")
            if kind[0] == "settings":
                o.append(f"            echo {sq(' '.join(n for n, _ in settings))}")
            elif kind[0] == "keys":
                o.append("            __p2pstream_key_names \"$bin\"")
            elif kind[0] == "setting-value":
                o.append("            case $3 in")
                for name, sk in SETTING_VALUES.items():
                    if sk[0] == "words":
                        o.append(f"                {name}) echo {sq(' '.join(sk[1]))} ;;")
                    elif sk[0] == "keys":
                        o.append(f"                {name}) __p2pstream_key_names \"$bin\" ;;")
                o.append("            esac")
            o.append("            ;;")
    o += ["    esac", "}", ""]
    o += BASH_MAIN.splitlines()
    return "\n".join(o) + "\n"


BASH_MAIN = r"""_p2pstream() {
    local cur=${COMP_WORDS[COMP_CWORD]} bin=${COMP_WORDS[0]} path= flag= w i
    local -a args=()
    COMPREPLY=()
    # Walk the words before the cursor: a subcommand extends the path, a flag that
    # takes a value swallows the next word (and a "=" split off by bash), the rest
    # are positionals.
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case $w in
            -*)
                if [[ " $(_p2pstream_value_flags "$path") " == *" $w "* ]]; then
                    if ((i + 1 < COMP_CWORD)) && [[ ${COMP_WORDS[i + 1]} == = ]]; then ((i++)); fi
                    if ((i + 1 >= COMP_CWORD)); then flag=$w; else ((i++)); fi
                fi
                ;;
            =) ;;
            *)
                if [[ " $(_p2pstream_subcommands "$path") " == *" $w "* ]]; then
                    path=${path:+$path }$w
                    args=()
                else
                    args+=("$w")
                fi
                ;;
        esac
    done
    if [[ -n $flag ]]; then
        [[ $cur == = ]] && cur=
        _p2pstream_flag_value "$path" "$flag"
        return 0
    fi
    if [[ $cur == --*=* ]]; then
        # The flag and its value in one word, joined by "=" (when "=" is not a word break).
        flag=${cur%%=*}
        cur=${cur#*=}
        _p2pstream_flag_value "$path" "$flag"
        COMPREPLY=("${COMPREPLY[@]/#/$flag=}")
        return 0
    fi
    if [[ $cur == -* ]]; then
        _p2pstream_reply "$(_p2pstream_flags "$path")" "$cur"
        return 0
    fi
    local words
    words="$(_p2pstream_subcommands "$path") $(_p2pstream_positional "$path" ${#args[@]} "${args[0]}")"
    if [[ -z ${words// /} ]]; then
        words=$(_p2pstream_flags "$path")
    fi
    _p2pstream_reply "$words" "$cur"
    return 0
}

complete -F _p2pstream p2pstream"""


# ---------------------------------------------------------------- zsh


def zsh_desc(text):
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")


def zsh_message(text):
    return text.replace("\\", "\\\\").replace(":", "\\:")


def zsh_action(kind):
    if kind[0] == "words":
        return "(" + " ".join(kind[1]) + ")"
    if kind[0] == "keys":
        return "__p2pstream_key_names"
    if kind[0] == "file":
        return "_files"
    if kind[0] == "settings":
        return "__p2pstream_settings"
    if kind[0] == "setting-value":
        return "->setting-value"
    return " "


def zsh_option(cmd, opt):
    names = opt.names
    repeatable = "repeatable" in opt.desc
    if names == ["--help"] or "--help" in names:
        excl = "(- *)"
    else:
        ex = ([] if repeatable else (names if len(names) > 1 else [])) + opt.excludes
        excl = "(" + " ".join(ex) + ")" if ex else ""
    star = "*" if repeatable else ""
    desc = "[" + zsh_desc(opt.desc) + "]"
    arg = ""
    if opt.value:
        long = (opt.longs or opt.shorts)[0]
        kind = value_kind(cmd.path, long)
        arg = ":" + zsh_message(long.lstrip("-").replace("-", " ")) + ":" + zsh_action(kind)
    out = []
    for n in names:
        suffix = "=" if opt.value and n.startswith("--") else ("+" if opt.value else "")
        out.append(n + suffix)
    if len(out) == 1:
        return sq(excl + star + out[0] + desc + arg)
    return sq(excl + star) + "{" + ",".join(out) + "}" + sq(desc + arg)


def zsh_positionals(cmd):
    kinds = POSITIONAL_VALUES.get(cmd.path, [])
    out = []
    for i, p in enumerate(cmd.positionals):
        kind = kinds[i] if i < len(kinds) else ("none",)
        msg = zsh_message(f"{p.name.lower().replace('_', ' ')}: {p.desc}" if p.desc else p.name.lower())
        out.append(sq((":" if p.required else "::") + msg + ":" + zsh_action(kind)))
    return out


def zsh_function(cmd):
    fn = "_p2pstream" + ident(cmd.path)
    specs = [zsh_option(cmd, o) for o in cmd.options]
    lines = [f"{fn}() {{", "  local curcontext=$curcontext state state_descr line ret=1", "  typeset -A opt_args"]
    if cmd.subcommands:
        specs += [sq(": :->command"), sq("*:: :->argument")]
    else:
        specs += zsh_positionals(cmd)
    lines.append("  _arguments -C -s -S \\")
    for s in specs:
        lines.append(f"    {s} \\")
    lines.append("    && ret=0")
    if cmd.subcommands:
        name = " ".join([PROG, *cmd.path])
        lines += ["  case $state in", "    command)", "      local -a commands", "      commands=("]
        for s in cmd.subcommands:
            lines.append("        " + sq(s.path[-1] + ":" + zsh_message(s.desc)))
        lines += ["      )", f"      _describe -t commands {sq(name + ' command')} commands && ret=0", "      ;;",
                  "    argument)", "      curcontext=${curcontext%:*:*}:" + "-".join([PROG, *cmd.path]) + "-$words[1]:",
                  "      case $words[1] in"]
        for s in cmd.subcommands:
            lines.append(f"        {s.path[-1]}) _p2pstream{ident(s.path)} && ret=0 ;;")
        lines += ["      esac", "      ;;", "  esac"]
    elif any(k[0] == "setting-value" for k in POSITIONAL_VALUES.get(cmd.path, [])):
        lines += ["  if [[ $state == setting-value ]]; then", "    case $line[1] in"]
        for name, sk in SETTING_VALUES.items():
            lines.append(f"      {name}) _wanted values expl {sq(name)} {zsh_setting_action(sk)} && ret=0 ;;")
        lines += ["      *) _message 'value' ;;", "    esac", "  fi"]
    lines += ["  return ret", "}", ""]
    return lines


def zsh_setting_action(kind):
    if kind[0] == "words":
        return "compadd -- " + " ".join(kind[1])
    return "__p2pstream_key_names"


def gen_zsh(root, settings):
    o = [f"#compdef {PROG}", f"# zsh completion for {PROG}", f"# {HEADER}", ""]
    o += [
        "# Key names, from `p2pstream key list --json`.",
        "__p2pstream_key_names() {",
        "  local -a names",
        "  (( $+commands[${_p2pstream_bin:-p2pstream}] )) || [[ -x ${_p2pstream_bin} ]] || return 1",
        "  names=(${(f)\"$(${_p2pstream_bin:-p2pstream} key list --json 2>/dev/null |"
        " sed -n 's/^ *\"name\": *\"\\(.*\\)\",*$/\\1/p')\"})",
        "  _wanted keys expl 'key name' compadd -a names",
        "}",
        "",
        "# The settings of `p2pstream config`.",
        "__p2pstream_settings() {",
        "  local -a settings",
        "  settings=(",
    ]
    for name, desc in settings:
        o.append("    " + sq(name + ":" + zsh_message(desc)))
    o += ["  )", "  _describe -t settings 'setting' settings", "}", ""]
    for c in walk(root):
        if c.path:
            o += zsh_function(c)
    top = zsh_function(root)
    top.insert(1, "  local _p2pstream_bin=${words[1]}")
    o += top
    o += ['if [[ $zsh_eval_context[-1] == loadautofunc ]]; then', '  _p2pstream "$@"', "else",
          "  compdef _p2pstream p2pstream", "fi"]
    return "\n".join(o) + "\n"


# ---------------------------------------------------------------- fish


FISH_HELPERS = r"""# The state of the command line before the cursor: the subcommand path, the
# positionals given so far, and a flag still waiting for its value.
function __p2pstream_walk
    set -l line (commandline -pc)
    if set -q __p2pstream_line; and test "$__p2pstream_line" = "$line"
        return 0
    end
    set -g __p2pstream_line $line
    set -g __p2pstream_path ''
    set -g __p2pstream_args
    set -g __p2pstream_want ''
    set -l words (commandline -opc)
    set -e words[1]
    set -l skip 0
    for w in $words
        if test $skip -eq 1
            set skip 0
            continue
        end
        switch $w
            case '-*'
                if contains -- $w (__p2pstream_value_flags $__p2pstream_path)
                    set skip 1
                end
            case '*'
                if contains -- $w (__p2pstream_subcommands $__p2pstream_path)
                    set -g __p2pstream_path (string trim -- "$__p2pstream_path $w")
                    set -g __p2pstream_args
                else
                    set -g -a __p2pstream_args $w
                end
        end
    end
    if test $skip -eq 1
        set -g __p2pstream_want $words[-1]
    end
end

# True in command path $argv[1] (for its flags).
function __p2pstream_in
    __p2pstream_walk
    test "$__p2pstream_path" = "$argv[1]"
end

# True at a word of command path $argv[1] that is not a flag's value; with $argv[2],
# only when that many positionals come before it.
function __p2pstream_word
    __p2pstream_walk
    test "$__p2pstream_path" = "$argv[1]"; or return 1
    test -z "$__p2pstream_want"; or return 1
    test (count $argv) -lt 2; or test (count $__p2pstream_args) -eq $argv[2]
end

# True when positional $argv[1] (from 1) is $argv[2].
function __p2pstream_arg
    test "$__p2pstream_args[$argv[1]]" = "$argv[2]"
end

# Key names, from `p2pstream key list --json`.
function __p2pstream_key_names
    set -l bin (commandline -opc)[1]
    command -q $bin; or return 0
    $bin key list --json 2>/dev/null | string replace -rf '^\s*"name":\s*"(.*)",?$' '$1'
end
"""


def fish_switch(fn, comment, rows):
    out = [f"# {comment}", f"function {fn}", "    switch $argv[1]"]
    for key, words in rows:
        if words:
            out += [f"        case {fish_q(key)}", "            printf '%s\\n' " + " ".join(fish_q(w) for w in words)]
    out += ["    end", "end", ""]
    return out


def fish_cond(text):
    """A double-quoted fish word, for conditions that hold only command words."""
    if re.search(r'["$\\]', text):
        raise HelpFormatError(f"cannot quote {text!r} for fish")
    return '"' + text + '"'


def fish_value_args(kind):
    if kind[0] == "words":
        return "-x -a " + fish_q(" ".join(kind[1]))
    if kind[0] == "keys":
        return "-x -a '(__p2pstream_key_names)'"
    if kind[0] == "file":
        return "-r -F"
    return "-x"


def gen_fish(root, settings):
    cmds = list(walk(root))
    o = [f"# fish completion for {PROG}", f"# {HEADER}", ""]
    o += fish_switch("__p2pstream_subcommands", "The subcommands of each command path.",
                     [(key_of(c.path), [s.path[-1] for s in c.subcommands]) for c in cmds])
    o += fish_switch("__p2pstream_value_flags", "The flags that take a value.",
                     [(key_of(c.path), c.value_flags()) for c in cmds])
    o += FISH_HELPERS.splitlines()
    o += ["", "complete -c p2pstream -f"]
    for c in cmds:
        o += ["", f"# {' '.join([PROG, *c.path])}"]
        word = fish_cond("__p2pstream_word " + sq(key_of(c.path)))
        for s in c.subcommands:
            o.append(f"complete -c p2pstream -n {word} -a {fish_q(s.path[-1])} -d {fish_q(s.desc)}")
        cond = fish_cond("__p2pstream_in " + sq(key_of(c.path)))
        for opt in c.options:
            parts = [f"complete -c p2pstream -n {cond}"]
            parts += [f"-s {s.lstrip('-')}" for s in opt.shorts] + [f"-l {n[2:]}" for n in opt.longs]
            if opt.value:
                parts.append(fish_value_args(value_kind(c.path, (opt.longs or opt.shorts)[0])))
            parts.append(f"-d {fish_q(opt.desc)}")
            o.append(" ".join(parts))
        for i, kind in enumerate(POSITIONAL_VALUES.get(c.path, [])):
            at = f"__p2pstream_word {sq(key_of(c.path))} {i}"
            if kind[0] == "settings":
                for name, desc in settings:
                    o.append(f"complete -c p2pstream -n {fish_cond(at)} -a {fish_q(name)} -d {fish_q(desc)}")
            elif kind[0] == "keys":
                o.append(f"complete -c p2pstream -n {fish_cond(at)} -a '(__p2pstream_key_names)'")
            elif kind[0] == "setting-value":
                for name, sk in SETTING_VALUES.items():
                    cond2 = fish_cond(f"{at}; and __p2pstream_arg 1 {name}")
                    args = fish_value_args(sk).replace("-x ", "", 1)
                    o.append(f"complete -c p2pstream -n {cond2} {args}")
    return "\n".join(o) + "\n"


# ---------------------------------------------------------------- main


def generate(binary, outdir):
    root = parse_command(binary, [])
    settings = parse_settings(root)
    os.makedirs(outdir, exist_ok=True)
    texts = {"p2pstream.bash": gen_bash(root, settings), "_p2pstream": gen_zsh(root, settings),
             "p2pstream.fish": gen_fish(root, settings)}
    for name, text in texts.items():
        with open(os.path.join(outdir, name), "w", encoding="utf-8", newline="\n") as f:
            f.write(text)


def check(binary, outdir):
    with tempfile.TemporaryDirectory(prefix="p2p-completions-check-") as tmp:
        generate(binary, tmp)
        stale = False
        for name in FILES:
            want_path, have_path = os.path.join(tmp, name), os.path.join(outdir, name)
            with open(want_path, encoding="utf-8") as f:
                want = f.read().splitlines(keepends=True)
            try:
                with open(have_path, encoding="utf-8") as f:
                    have = f.read().splitlines(keepends=True)
            except FileNotFoundError:
                print(f"gen-completions: {have_path} is missing", file=sys.stderr)
                stale = True
                continue
            if want != have:
                stale = True
                sys.stdout.writelines(difflib.unified_diff(have, want, have_path, f"{have_path} (regenerated)"))
    if stale:
        print(f"gen-completions: the completions in {outdir} are stale; run scripts/gen-completions.py BIN {outdir}",
              file=sys.stderr)
        return 1
    return 0


def main(argv):
    args = argv[1:]
    checking = bool(args) and args[0] == "--check"
    if checking:
        args = args[1:]
    if len(args) != 2 or args[0].startswith("-"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    binary, outdir = args
    if not os.access(binary, os.X_OK):
        print(f"gen-completions: {binary} is not an executable; build p2pstream first", file=sys.stderr)
        return 2
    try:
        return check(binary, outdir) if checking else generate(binary, outdir) or 0
    except (HelpFormatError, OSError, subprocess.SubprocessError) as e:
        print(f"gen-completions: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
