"""YAML that remembers where things were, so an error can name the line that caused it.

    tree = parse_yaml(text, "mine.yaml")        # YamlError: "mine.yaml:3:7: YAML syntax error: ..."
    lines = line_table(tree)                     # {"grid.lr.start": 14, "seeds[1]": 5, ...}
    where("mine.yaml", lines, "grid.lr.start[2]")   # "mine.yaml:14" (the nearest known line)

The YAML is read as YAML 1.2 would for booleans and floats: ``on``/``off``/``yes``/``no``
stay strings (so ``aux_head: off`` means "off", not False) and ``1e-4`` is a float
(PyYAML alone reads it as a string). A key given twice in one mapping is an error, since
one of the two values would silently be lost. Nothing here knows what a search space is.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = ["LineDict", "LineList", "YamlError", "parse_yaml", "line_table", "line_of", "where"]


class LineDict(dict):
    """A mapping read from YAML that remembers where its keys were (1-based lines)."""

    line: int = 0
    key_lines: dict


class LineList(list):
    """A sequence read from YAML that remembers where its items were (1-based lines)."""

    line: int = 0
    item_lines: list


class YamlError(ValueError):
    """Text that is not valid YAML (or repeats a key); the message is one line."""


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int, first: int) -> None:
        super().__init__(key)
        self.key, self.line, self.first = key, line, first


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans and floats, line numbers, no duplicate keys."""


_BOOL = "tag:yaml.org,2002:bool"
_FLOAT = "tag:yaml.org,2002:float"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
        |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _construct_map(loader: _Loader, node: yaml.MappingNode):
    data = LineDict()
    data.line = node.start_mark.line + 1
    data.key_lines = {}
    yield data
    own = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
    loader.flatten_mapping(node)  # YAML merge keys (<<: *anchor): own keys override merged ones
    merged: set = set()
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "found an unhashable key", key_node.start_mark) from None
        line = key_node.start_mark.line + 1
        if key in data.key_lines and key not in merged:
            raise _DuplicateKey(key, line, data.key_lines[key])
        if id(key_node) in own:
            merged.discard(key)
        else:
            merged.add(key)
        data.key_lines[key] = line
        data[key] = loader.construct_object(value_node, deep=True)


def _construct_seq(loader: _Loader, node: yaml.SequenceNode):
    data = LineList()
    data.line = node.start_mark.line + 1
    data.item_lines = [child.start_mark.line + 1 for child in node.value]
    yield data
    data.extend(loader.construct_object(child, deep=True) for child in node.value)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def parse_yaml(text: str, source: str) -> Any:
    """Parse ``text`` into LineDicts/LineLists; a :class:`YamlError` names ``source:line:col``."""
    try:
        return yaml.load(text, Loader=_Loader)
    except _DuplicateKey as exc:
        raise YamlError(f"{source}:{exc.line}: {exc.key}: duplicate key (first given at line "
                        f"{exc.first}); give each key once") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where_ = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        context = exc.context
        if context and exc.context_mark is not None and mark is not None \
                and exc.context_mark.line != mark.line:
            context += f" (started at line {exc.context_mark.line + 1})"
        what = " ".join(part for part in (context, exc.problem) if part)
        what = " ".join(what.split())
        raise YamlError(f"{where_}: YAML syntax error: {what}") from None
    except yaml.YAMLError as exc:
        raise YamlError(f"{source}: YAML syntax error: {' '.join(str(exc).split())}") from None


def line_table(tree: Any) -> dict[str, int]:
    """The line of every dotted path in a parsed tree (``"grid.lr[1]"``; keys as written)."""
    lines: dict[str, int] = {}
    _walk_lines(tree, "", lines)
    return lines


def _walk_lines(node: Any, prefix: str, out: dict[str, int]) -> None:
    if isinstance(node, LineDict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            out.setdefault(path, node.key_lines.get(key, node.line))
            _walk_lines(value, path, out)
    elif isinstance(node, LineList):
        for i, (value, line) in enumerate(zip(node, node.item_lines)):
            path = f"{prefix}[{i}]"
            out.setdefault(path, line)
            _walk_lines(value, path, out)


def line_of(lines: dict[str, int], key: str) -> int | None:
    """The line of a dotted path, or of the nearest enclosing key that has one.

    Paths made up for a message (``sample.params.lr.start.uniform``) still find a line.
    """
    line = lines.get(key)
    probe = key
    while line is None and ("." in probe or "[" in probe):
        probe = re.sub(r"(\[\d+\]|\.[^.\[]*)$", "", probe)
        line = lines.get(probe)
    return line


def where(source: str, lines: dict[str, int], key: str) -> str:
    """``source:line`` for a dotted path (just ``source`` if no line is known)."""
    line = line_of(lines, key)
    return f"{source}:{line}" if line else source
