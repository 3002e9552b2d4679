"""Typed reads from a YAML node tree that remember the line each key was written on.

yaml.compose (not yaml.safe_load) keeps the nodes' source marks, so every error can name its
line; this module adds the type rules (no bool or number where a string belongs, no float where
an integer belongs) and the environment overrides.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

import yaml

from recorder.config.model import ConfigError

_TAG = "tag:yaml.org,2002:"
_KINDS: Final = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "null": "null",
    "timestamp": "date",
    "seq": "list",
    "map": "mapping",
}
_CONSTRUCTOR: Final = yaml.constructor.SafeConstructor()  # its int/float parsing is stateless


class Required:
    """Marker default: the key must be given, in the file or in its environment variable."""


REQUIRED: Final = Required()
Check = Callable[[str], str]


class Invalid(ValueError):
    """Raised by a check with what is wrong; the reader adds file, line and key path."""


def kind(node: yaml.Node) -> str:
    tag = str(node.tag)
    return _KINDS.get(tag.removeprefix(_TAG), f"value tagged {tag}")


def suggest(word: str, choices: Sequence[str]) -> str:
    """ "; did you mean 'x'?" for the closest choice (ignoring case), or ""."""
    lowered = {c.lower(): c for c in choices}
    match = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return f"; did you mean '{lowered[match[0]]}'?" if match else ""


def _shown(found: str, node: yaml.ScalarNode) -> str:
    return "nothing (null)" if found == "null" else f"{found} '{node.value}'"


# What YAML 1.1 (PyYAML) reads as text though it looks like a number: an exponent without a
# dot in its mantissa or without a sign (1e3, 1.0e3, 1e+3), or digits grouped with a comma or
# a space. A float it reads wants both: 1.0e+3.
_NUMBER_LIKE: Final = re.compile(r"[-+]?(\d+(\.\d*)?[eE][-+]?\d+|\d{1,3}([, ]\d{3})+)")


def _as_number(found: str, node: yaml.ScalarNode, *, whole: bool) -> str:
    """`_shown`, with how to write it when a number was meant (`whole`: an integer)."""
    shown = _shown(found, node)
    if found == "string" and _NUMBER_LIKE.fullmatch(node.value.strip()):
        how = "the digits alone" if whole else "the digits alone, or an exponent as 1.0e+3"
        shown += f" (YAML reads it as text: write {how})"
    return shown


def line_of(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


class Section:
    """One YAML mapping: its keys (checked against `allowed`), their lines and value nodes.

    `line` is where errors about a missing key point: the line of the key that introduced this
    mapping (or of the nearest ancestor present in the file; 1 for the top level).
    """

    def __init__(
        self,
        file: str,
        env: Mapping[str, str],
        path: str,
        line: int,
        node: yaml.Node | None,
        allowed: Sequence[str] | None,
    ) -> None:
        self.file, self.env, self.path, self.line = file, env, path, line
        self.entries: dict[str, tuple[int, yaml.Node]] = {}
        if node is None or kind(node) == "null":
            return  # absent, or "ari:" with nothing under it: all defaults
        if not isinstance(node, yaml.MappingNode):
            raise self.error(None, f"expected a mapping, got a {kind(node)}", line)
        for key_node, value_node in node.value:
            key_line = line_of(key_node)
            if key_node.tag == _TAG + "merge":
                raise self.error(None, "merge keys (<<) are not supported", key_line)
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.error(None, f"keys must be strings, got a {kind(key_node)}", key_line)
            if kind(key_node) != "string":
                message = f"keys must be strings, got {kind(key_node)} '{key_node.value}'"
                raise self.error(None, message + "; quote it", key_line)
            key = str(key_node.value)
            if allowed is not None and key not in allowed:
                hint = suggest(key, allowed) or f"; known keys: {', '.join(allowed)}"
                raise self.error(key, "unknown key" + hint, key_line)
            if key in self.entries:
                first = self.entries[key][0]
                raise self.error(key, f"duplicate key (first given on line {first})", key_line)
            self.entries[key] = (key_line, value_node)

    def key_path(self, key: str | None) -> str:
        if key is None:
            return self.path or "(top level)"
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str | None, message: str, line: int | None = None) -> ConfigError:
        """An error about `key`: on its line if it is in the file, else on this section's."""
        if line is None:
            line = self.entries[key][0] if key in self.entries else self.line
        return ConfigError(self.file, line, self.key_path(key), message)

    def section(self, key: str, allowed: Sequence[str] | None) -> Section:
        line, node = self.entries.get(key, (self.line, None))
        return Section(self.file, self.env, self.key_path(key), line, node, allowed)

    def _scalar(self, key: str, expected: str, secret: bool) -> tuple[str, yaml.ScalarNode]:
        node = self.entries[key][1]
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(key, f"expected {expected}, got a {kind(node)}")
        found = kind(node)
        if found == "boolean":
            shown = "" if secret else f" '{node.value}'"
            quote = "; quote it" if expected == "a string" else ""
            raise self.error(
                key,
                f"expected {expected}, got boolean{shown} (YAML reads unquoted "
                f"yes/no/on/off/true/false as booleans){quote}",
            )
        return found, node

    def text(
        self,
        key: str,
        default: str | Required,
        check: Check | None = None,
        *,
        env_var: str | None = None,
        secret: bool = False,
    ) -> str:
        value = self.optional_text(key, default, check, env_var=env_var, secret=secret)
        assert value is not None  # only a nullable key's null gets through as None
        return value

    def optional_text(
        self,
        key: str,
        default: str | Required | None,
        check: Check | None = None,
        *,
        env_var: str | None = None,
        secret: bool = False,
        nullable: bool = False,
    ) -> str | None:
        """A string: from `env_var` when that is set and non-empty, else the file, else default.

        The file's value is checked even when the environment overrides it: a mistake in the
        file should not wait to surface until the variable is unset. With `secret`, no message
        includes the value.
        """
        from_env = self.env.get(env_var, "") if env_var else ""
        value: str | None = None
        found, node = self._scalar(key, "a string", secret) if key in self.entries else ("", None)
        if node is not None and found == "string":
            value = str(node.value)
        elif node is not None and found != "null":
            shown = "" if secret else f" {node.value}"
            raise self.error(key, f"expected a string, got {found}{shown}; quote it")
        elif node is not None and nullable:
            value = None
        elif from_env:
            pass  # absent, or null ("password:" left for the environment): the variable fills it
        elif node is None and not isinstance(default, Required):
            value = default
        elif node is None or (env_var and isinstance(default, Required)):
            also = f" (or set environment variable {env_var})" if env_var else ""
            raise self.error(key, "required key is missing" + also)
        else:
            raise self.error(key, "expected a string, got nothing (null)")
        if value is not None and check is not None:
            try:
                value = check(value)
            except Invalid as exc:
                raise self.error(key, str(exc)) from None
        if from_env:
            try:
                value = check(from_env) if check else from_env
            except Invalid as exc:
                message = f"{exc} (from environment variable {env_var})"
                raise ConfigError(self.file, None, self.key_path(key), message) from None
        return value

    def integer(self, key: str, default: int, low: int, high: int | None = None) -> int:
        if key not in self.entries:
            return default
        found, node = self._scalar(key, "an integer", False)
        if found != "integer":
            raise self.error(key, f"expected an integer, got {_as_number(found, node, whole=True)}")
        try:  # Python refuses ints of more than 4,300 digits
            value = int(_CONSTRUCTOR.construct_yaml_int(node))
        except ValueError:
            raise self.error(key, f"is too large, got {node.value[:40]}...") from None
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise self.error(key, f"must be {bounds}, got {value}")
        return value

    def seconds(self, key: str, default: float) -> float:
        """A duration in seconds, greater than 0; an integer is fine (30 means 30.0)."""
        if key not in self.entries:
            return default
        found, node = self._scalar(key, "a number", False)
        try:
            if found == "integer":
                value = float(_CONSTRUCTOR.construct_yaml_int(node))
            elif found == "number":
                value = float(_CONSTRUCTOR.construct_yaml_float(node))
            else:
                raise self.error(key, "expected a number of seconds, got "
                                 f"{_as_number(found, node, whole=False)}")
        except (ValueError, OverflowError):  # past a float, or an int of 4,300 digits
            raise self.error(key, f"is too large, got {node.value[:40]}...") from None
        if not math.isfinite(value) or value <= 0:
            raise self.error(key, f"must be a finite number greater than 0, got {node.value}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        """true or false (YAML's yes/no/on/off spellings are booleans too)."""
        if key not in self.entries:
            return default
        node = self.entries[key][1]
        if not isinstance(node, yaml.ScalarNode) or kind(node) != "boolean":
            shown = _shown(kind(node), node) if isinstance(node, yaml.ScalarNode) else kind(node)
            raise self.error(key, f"expected true or false, got {shown}")
        return bool(_CONSTRUCTOR.construct_yaml_bool(node))


def parse_yaml(path: Path, error: type[ConfigError]) -> yaml.Node | None:
    """The YAML node tree of `path` (line numbers kept); `error` (ConfigError or a subclass)
    names the file and line of anything unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(path, None, None, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise error(path, None, None, f"cannot read: not UTF-8 ({exc.reason})") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = int(mark.line) + 1 if mark is not None else None
        what = ", ".join(part for part in (exc.context, exc.problem) if part) or str(exc)
        raise error(path, line, None, f"invalid YAML: {what}") from None
    except yaml.YAMLError as exc:
        raise error(path, None, None, f"invalid YAML: {exc}") from None
    except RecursionError:  # PyYAML composes nested blocks by recursion
        raise error(path, None, None, "invalid YAML: blocks nested too deeply") from None
    try:
        values = 0 if root is None else expanded(root)
    except Endless as exc:
        raise error(path, line_of(exc.node), None, "an alias (*name) is used inside the block it "
                    "names: the value would never end") from None
    if values > MAX_VALUES:
        raise error(path, None, None,
                    f"holds {values:,} values once its aliases (*name) are expanded, more than "
                    f"the {MAX_VALUES:,} a file may: an alias may repeat a block, not multiply it")
    return root


# Aliases make a small file stand for a huge tree (a do-not-record block referenced thousands of
# times, or nested: "billion laughs"), and every value of it is read and checked: a bound, so a
# bad file is refused at once instead of taking minutes and gigabytes. A real policy with a
# long do-not-record list has a few thousand values.
MAX_VALUES: Final = 200_000


class Endless(ValueError):
    """A node inside itself (`a: &x [1, *x]`)."""

    def __init__(self, node: yaml.Node) -> None:
        super().__init__("a node inside itself")
        self.node = node


def expanded(root: yaml.Node) -> int:
    """How many nodes the tree holds with every alias expanded (each shared node sized once:
    linear in the file, whatever the expansion); Endless if a node holds itself."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()  # entered, children not yet sized
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        if leaving:
            open_.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in _children(node))
            continue
        if id(node) in sizes:
            continue
        if id(node) in open_:
            raise Endless(node)
        open_.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
