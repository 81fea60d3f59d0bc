"""YAML through ruamel.yaml, remembering where every key was so an error can name its line.

    tree, lines = load_yaml(text, "mine.yaml")   # YamlError: "mine.yaml:3:7: YAML syntax error: ..."
    lines["grid.lr.start[2]"]                    # 14
    where("mine.yaml", lines, "grid.lr.start[2].x")   # "mine.yaml:14" (the nearest known line)

ruamel.yaml reads YAML 1.2, so ``on``/``off``/``yes``/``no`` stay strings (``aux_head: off``
means "off", not False) and ``1e-4`` is a float; a key given twice in one mapping is an
error. The tree comes back as plain dicts, lists and scalars. Nothing here knows what a
search space is.

Bounded work for any text: the document is first composed (a graph in which an alias
``*a`` is one shared node, so composing is linear in the text) and checked there, before
anything is built: an explicit tag other than YAML's plain types (``!!python/object``...)
is refused, and so is a document whose aliases would expand it to more than
:data:`MAX_VALUES` values (the "billion laughs"). The caller caps the text's size.
"""

from __future__ import annotations

import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode

__all__ = ["YamlError", "load_yaml", "line_of", "where", "MAX_VALUES"]

# Values (mappings, lists, scalars) a document may expand to, aliases counted at every use.
# A spec is a page of keys: the largest shipped one has ~150; a list of 20,000 seeds fits.
MAX_VALUES = 100_000
_PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in
                        ("str", "int", "float", "bool", "null", "map", "seq", "merge", "timestamp"))


class YamlError(ValueError):
    """Text that is not valid YAML (or repeats a key); the message is one line."""


def load_yaml(text: str, source: str) -> tuple[Any, dict[str, int]]:
    """(plain tree, line of every dotted path such as ``"grid.lr[1]"``); :class:`YamlError`
    names ``source:line:col``."""
    try:
        _check_composed(YAML(typ="rt").compose(text), source)
        tree = YAML(typ="rt").load(text)
    except DuplicateKeyError as exc:
        line = exc.problem_mark.line + 1
        key = _duplicate_key(text, exc)
        first = _first_line_of_key(text, exc.context_mark, key)
        raise YamlError(f"{source}:{line}: {key}: duplicate key (first given at line {first}); "
                        f"give each key once") from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        context = exc.context
        if context and exc.context_mark is not None and mark is not None \
                and exc.context_mark.line != mark.line:
            context += f" (started at line {exc.context_mark.line + 1})"
        what = " ".join(" ".join(p for p in (context, exc.problem) if p).split())
        raise YamlError(f"{at}: YAML syntax error: {what}") from None
    except YAMLError as exc:
        raise YamlError(f"{source}: YAML syntax error: {' '.join(str(exc).split())}") from None
    lines: dict[str, int] = {}
    return _plain(tree, "", lines), lines


def _check_composed(root: Any, source: str) -> None:
    """Refuse tags and alias bombs on the composed graph, without expanding it."""
    sizes: dict[int, int] = {}      # node id -> values it expands to (each shared node sized once)
    stack: list[tuple[Any, bool]] = [(root, False)] if root is not None else []
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        tag = str(getattr(node.tag, "value", node.tag) or "")
        if tag and tag not in _PLAIN_TAGS:
            shown = tag.replace("tag:yaml.org,2002:", "!!")
            raise YamlError(f"{source}:{node.start_mark.line + 1}: YAML tag {shown} is not allowed; "
                            f"expected plain values (text, numbers, true/false, null, lists, mappings)")
        children = [c for item in node.value for c in (item if isinstance(item, tuple) else (item,))] \
            if isinstance(node.value, list) else []
        if children_done or not children:
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[id(node)] > MAX_VALUES:
                raise YamlError(f"{source}:{node.start_mark.line + 1}: this YAML expands to more than "
                                f"{MAX_VALUES:,} values (aliases *name repeat what they name); expected a "
                                f"search space of at most {MAX_VALUES:,} values")
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)


def _plain(node: Any, path: str, lines: dict[str, int]) -> Any:
    """ruamel's round-trip types as dict/list/int/float/str/bool, recording lines on the way."""
    if isinstance(node, CommentedMap):
        out = {}
        for key, value in node.items():
            sub = f"{path}.{key}" if path else str(key)
            try:
                lines.setdefault(sub, node.lc.key(key)[0] + 1)
            except (KeyError, TypeError):  # a key merged in with <<: has no position here
                lines.setdefault(sub, node.lc.line + 1)
            out[_scalar(key)] = _plain(value, sub, lines)
        return out
    if isinstance(node, CommentedSeq):
        out = []
        for i, value in enumerate(node):
            sub = f"{path}[{i}]"
            lines.setdefault(sub, node.lc.item(i)[0] + 1)
            out.append(_plain(value, sub, lines))
        return out
    return _scalar(node)


def _scalar(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


def _duplicate_key(text: str, exc: DuplicateKeyError) -> str:
    match = re.search(r'found duplicate key "(.*?)"', exc.problem or "")
    return match.group(1) if match else "?"


def _first_line_of_key(text: str, mapping_mark: Any, key: str) -> int | str:
    """The line where ``key`` first appears in the mapping that starts at ``mapping_mark``."""
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = True
    stack = [yaml.compose(text)]
    while stack:
        node = stack.pop()
        if isinstance(node, MappingNode) and mapping_mark is not None \
                and node.start_mark.line == mapping_mark.line \
                and node.start_mark.column == mapping_mark.column:
            for key_node, _ in node.value:
                if str(key_node.value) == key:
                    return key_node.start_mark.line + 1
        if isinstance(getattr(node, "value", None), list):
            for item in node.value:
                stack.extend(item if isinstance(item, tuple) else (item,))
    return "?"


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
