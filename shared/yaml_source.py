"""Where a problem is in a YAML file: the `file:line:column: key: message` every config validator reports."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

YamlPath = tuple[str | int, ...]


@dataclass(frozen=True)
class SourceIssue:
    file: str
    line: int
    column: int
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.key}: {self.message}"


def key_path(path: YamlPath) -> str:
    """("steps", 2, "depends_on") -> "steps[2].depends_on"."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<document>"


def locate(node: yaml.Node | None, path: YamlPath) -> tuple[int, int]:
    """1-based line/column of the deepest node along `path` that exists in the composed document."""
    best = node
    for part in path:
        if isinstance(best, yaml.MappingNode):
            nxt = next((v for k, v in best.value if isinstance(k, yaml.ScalarNode) and k.value == part), None)
            if nxt is None:
                break
            best = nxt
        elif isinstance(best, yaml.SequenceNode) and isinstance(part, int) and part < len(best.value):
            best = best.value[part]
        else:
            break
    return (1, 1) if best is None else (best.start_mark.line + 1, best.start_mark.column + 1)


_FastLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it


@dataclass(frozen=True)
class YamlBounds:
    """How much YAML one config file may hold, checked before any Python object is built from it."""

    max_bytes: int = 1 << 20
    """Raw UTF-8 size. Pipelines pass their plan's (smaller) limit; 1 MiB is the most any tenant file may be."""
    max_nodes: int = 100_000
    """Scalars, sequences and mappings in the document (a 50-step pipeline has ~1,000)."""
    max_depth: int = 64
    """Nesting of sequences and mappings; deeper documents overflow recursive walkers (libyaml stops at 1,000)."""


DEFAULT_BOUNDS = YamlBounds()


class Position(Protocol):
    """A place in the text, 0-based: PyYAML's Mark and libyaml's alike."""

    line: int
    column: int


class UnsafeYaml(yaml.YAMLError):
    """A document refused before construction (alias, too big, too many nodes, too deep). It has `problem` and
    `problem_mark` like PyYAML's own errors, so every caller's `invalid YAML` report gives its line and column."""

    def __init__(self, problem: str, mark: Position | None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark

    def __str__(self) -> str:
        return self.problem


_NUMBER_LIKE = re.compile(r"[-+]?[0-9][0-9_:.a-fA-FxXoObB]*")
_LONGEST_NUMBER = 4000
"""Python refuses to turn more than 4,300 digits into an int (ValueError, not a YAML error): refuse such a plain
scalar here, at its position, instead."""


def read_config_text(path: Path, bounds: YamlBounds = DEFAULT_BOUNDS) -> str:
    """A config file's text, reading at most `bounds.max_bytes` + 1 bytes: a 56 MB file is refused (UnsafeYaml)
    without being read into memory first. UnicodeDecodeError if it is not UTF-8."""
    limit = bounds.max_bytes + 1
    # os.open/os.read, not open(): no buffer copy, no file object and no fstat() (a cold schedule tick reads two files)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        raw = os.read(fd, limit)
        while raw and len(raw) < limit:  # a short read is not the end of the file: the next read says
            more = os.read(fd, limit - len(raw))
            if not more:
                break
            raw += more
    finally:
        os.close(fd)
    if len(raw) > bounds.max_bytes:
        size = path.stat().st_size
        raise UnsafeYaml(f"the file is {size:,} bytes; at most {bounds.max_bytes:,} are accepted", None)
    return raw.decode("utf-8")


def compose_and_load(text: str, bounds: YamlBounds = DEFAULT_BOUNDS) -> tuple[yaml.Node | None, object]:
    """Parse once (libyaml when available): the node tree for line/column positions and the plain data built from it.

    Every file this project reads is written by a tenant, so the events are checked first (`check_events`): no
    anchors or aliases, and at most `bounds` nodes, depth and bytes. Raises yaml.YAMLError like yaml.safe_load
    (UnsafeYaml for what the bounds refuse).
    """
    check_events(text, bounds)
    loader = _FastLoader(text)
    try:
        node = loader.get_single_node()
        try:
            data = _construct(loader, node) if node is not None else None
        except ValueError as exc:  # a value Python cannot represent that check_events did not foresee
            raise UnsafeYaml(f"a value cannot be read: {exc}", node.start_mark if node else None) from exc
    finally:
        loader.dispose()
    return node, data


_STR_TAG = "tag:yaml.org,2002:str"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"
_SPECIAL_KEY_TAGS = frozenset({"tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"})


class _NotPlain(Exception):
    """A node the short path leaves to PyYAML: a merge key, an unhashable key, a tagged collection (!!set, !!omap)."""


def _construct(loader: yaml.SafeLoader, node: yaml.Node) -> object:
    """What `loader.construct_document(node)` builds, on a short path for plain documents (str/map/seq nodes built here,
    other scalars by PyYAML's own constructors), since a cold schedule tick reads two config files (a cold pipeline
    file's compose_and_load: 135-176 us with PyYAML's generic walk, 118-140 us with this, interleaved runs). Anything
    else goes to PyYAML whole, so both paths give the same data and errors (tests/unit/test_yaml_construct.py). The
    tree has no aliases (check_events refused them) and is at most `max_depth` deep."""
    try:
        return _plain(loader, node)
    except _NotPlain:
        return loader.construct_document(node)


def _plain(loader: yaml.SafeLoader, node: yaml.Node) -> object:
    kind = type(node)
    if kind is yaml.ScalarNode:
        return node.value if node.tag == _STR_TAG else loader.construct_object(node, deep=True)
    if kind is yaml.SequenceNode and node.tag == _SEQ_TAG:
        return [_plain(loader, item) for item in node.value]
    if kind is not yaml.MappingNode or node.tag != _MAP_TAG:
        raise _NotPlain
    mapping: dict[object, object] = {}
    for key_node, value_node in node.value:
        if key_node.tag in _SPECIAL_KEY_TAGS:
            raise _NotPlain
        key = _plain(loader, key_node)
        if isinstance(key, list | dict):
            raise _NotPlain  # PyYAML raises its "found unhashable key" error
        mapping[key] = _plain(loader, value_node)  # a repeated key: the last one wins, as in PyYAML
    return mapping


def check_events(text: str, bounds: YamlBounds = DEFAULT_BOUNDS) -> None:
    """Refuse, at the event level and so before any node or object exists, what could make reading the document
    cost far more than its size: anchors and aliases (a 566-byte "billion laughs" expands to 10^9 values in whatever
    walks the data), more nodes or deeper nesting than `bounds`, numbers too long to convert.

    Why refuse anchors outright instead of capping their expansion: counting expanded nodes is not enough (one long
    string aliased 10,000 times is 10,000 nodes but gigabytes once stored in a run snapshot), and pipelines have
    `variables` and `parameters` for the reuse anchors would give.
    """
    _refuse_size(text, bounds)
    loader = _FastLoader(text)
    nodes = depth = 0
    try:
        # get_event() until None, dispatched on the exact class: half the cost of check_event() + an isinstance chain
        # per event, and this pass runs on every file a cold schedule tick reads (bench P6)
        while (event := loader.get_event()) is not None:  # type: ignore[no-untyped-call]  # untyped in the stubs
            kind = type(event)
            if kind in _COLLECTION_ENDS:
                depth -= 1
                continue
            if kind not in _NODE_STARTS and kind is not yaml.AliasEvent:
                continue  # stream and document boundaries
            nodes += 1
            if kind is not yaml.ScalarEvent:
                depth += 1
            _refuse(event, kind, nodes, depth, bounds)
    finally:
        loader.dispose()


_COLLECTION_ENDS = frozenset({yaml.SequenceEndEvent, yaml.MappingEndEvent})
_NODE_STARTS = frozenset({yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent})


def _refuse_size(text: str, bounds: YamlBounds) -> None:
    """More UTF-8 bytes than `bounds` allow. A character is 1 to 4 bytes, so most texts are decided by their length
    alone, without encoding a copy of them."""
    if len(text) * 4 <= bounds.max_bytes:
        return
    size = len(text.encode("utf-8"))
    if size > bounds.max_bytes:
        raise UnsafeYaml(f"the file is {size:,} bytes; at most {bounds.max_bytes:,} are accepted", None)


def _refuse(event: Any, kind: type, nodes: int, depth: int, bounds: YamlBounds) -> None:
    """check_events' refusals of one node or alias event, in their order: `nodes` counts the event, `depth` is the
    nesting of a collection it starts."""
    if kind is yaml.AliasEvent:
        raise UnsafeYaml(
            f"YAML aliases are not accepted (*{event.anchor}): write the value out, or use `variables`",
            event.start_mark,
        )
    if event.anchor is not None:
        raise UnsafeYaml(
            f"YAML anchors are not accepted (&{event.anchor}): write the value out, or use `variables`",
            event.start_mark,
        )
    if nodes > bounds.max_nodes:
        raise UnsafeYaml(f"more than {bounds.max_nodes:,} values in one file", event.start_mark)
    if kind is not yaml.ScalarEvent:
        if depth > bounds.max_depth:
            raise UnsafeYaml(f"nested more than {bounds.max_depth} levels deep", event.start_mark)
    elif _too_long_number(event):
        raise UnsafeYaml(f"a number of {len(event.value):,} characters; quote it if it is text", event.start_mark)


def _too_long_number(event: yaml.ScalarEvent) -> bool:
    """A plain (unquoted) scalar the resolver would read as a number longer than Python converts."""
    return not event.style and len(event.value) > _LONGEST_NUMBER and _NUMBER_LIKE.fullmatch(event.value) is not None


# -- one pass: checks, data and duplicate keys from the events, no node tree ------------------------------------------


@dataclass(frozen=True)
class DuplicateKey:
    """A key repeated in one mapping (YAML keeps only the last value): where, and the line of its first use."""

    path: YamlPath
    """Of the mapping that holds it, as `key_path` writes it (keys as written, list indexes as ints)."""
    name: str
    line: int
    column: int
    first_line: int


@dataclass(frozen=True)
class LoadedYaml:
    data: object
    duplicate_keys: tuple[DuplicateKey, ...]


def load_checked(text: str, bounds: YamlBounds = DEFAULT_BOUNDS) -> LoadedYaml:
    """What `compose_and_load` checks and builds, and the duplicate keys, in one pass over libyaml's events with no
    node tree: a valid file needs no positions, and a caller reporting a problem composes the nodes then
    (`compose_and_load`). A cold schedule tick reads two config files this way (bench P6).

    Plain documents only, as `_construct`'s short path: anything it leaves to PyYAML (tags on collections, merge and
    `=` keys, collection keys, a scalar no constructor takes, a second document) is read by `compose_and_load`
    instead, so data and errors are PyYAML's in every case (tests/unit/test_yaml_construct.py)."""
    _refuse_size(text, bounds)
    loader = _FastLoader(text)
    try:
        return _load_events(loader, bounds)
    except _NotPlain:
        pass
    finally:
        loader.dispose()
    node, data = compose_and_load(text, bounds)
    return LoadedYaml(data, tuple(duplicate_keys_of(node)))


def duplicate_keys_of(node: yaml.Node | None, path: YamlPath = ()) -> list[DuplicateKey]:
    """The duplicate keys of a composed document (keys compared as written, as `load_checked` compares them)."""
    found: list[DuplicateKey] = []
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
            mark = key.start_mark
            if name in first:
                found.append(DuplicateKey(path, name, mark.line + 1, mark.column + 1, first[name]))
            first.setdefault(name, mark.line + 1)
            found += duplicate_keys_of(value, (*path, name))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found += duplicate_keys_of(item, (*path, i))
    return found


class _Open:
    """A sequence or mapping being read: its container, where it sits in its parent, and (mappings) the key read
    last and the first line of every key as written."""

    __slots__ = ("container", "first_lines", "key", "key_name", "slot")

    def __init__(self, container: list[object] | dict[object, object], slot: str | int | None) -> None:
        self.container = container
        self.slot = slot
        self.key: object = _NO_KEY
        self.key_name = ""
        self.first_lines: dict[str, int] = {}


_NO_KEY = object()


def _load_events(loader: yaml.SafeLoader, bounds: YamlBounds) -> LoadedYaml:
    """The one pass of `load_checked`: check_events' refusals at the same events, in the same order. Raises _NotPlain
    for what it leaves to compose_and_load, including a constructor's error (compose_and_load would have checked the
    whole document before constructing anything, so it may report something else first)."""
    get_event: Callable[[], Any] = loader.get_event  # type: ignore[attr-defined]  # untyped in the stubs
    constructors = loader.yaml_constructors
    stack: list[_Open] = []
    duplicates: list[DuplicateKey] = []
    root: object = None
    nodes = 0
    get_event()  # the stream start
    if type(get_event()) is yaml.StreamEndEvent:  # else the document start
        return LoadedYaml(None, ())
    while (kind := type(event := get_event())) is not yaml.DocumentEndEvent:
        if kind in _COLLECTION_ENDS:
            stack.pop()
            continue
        nodes += 1
        _refuse(event, kind, nodes, len(stack) + 1, bounds)
        parent = stack[-1] if stack else None
        wants_key = parent is not None and parent.key is _NO_KEY and type(parent.container) is dict
        value: object
        if kind is yaml.ScalarEvent:
            value = _scalar(loader, constructors, event)
            if wants_key:
                assert parent is not None
                parent.key, parent.key_name = value, str(event.value)
                line = event.start_mark.line + 1
                first_line = parent.first_lines.get(parent.key_name)
                if first_line is None:
                    parent.first_lines[parent.key_name] = line
                else:
                    path: YamlPath = tuple(frame.slot for frame in stack[1:])  # type: ignore[misc]  # below the root
                    column = event.start_mark.column + 1
                    duplicates.append(DuplicateKey(path, parent.key_name, line, column, first_line))
                continue
        else:
            if wants_key or event.tag not in _PLAIN_COLLECTION_TAGS:
                raise _NotPlain  # a collection as a key (PyYAML's "found unhashable key"), !!set, !!omap, ...
            value = [] if kind is yaml.SequenceStartEvent else {}
        slot: str | int | None = None
        if parent is None:
            root = value
        elif type(parent.container) is list:
            slot = len(parent.container)
            parent.container.append(value)
        else:
            slot = parent.key_name
            parent.container[parent.key] = value  # type: ignore[call-overload]
            parent.key = _NO_KEY
        if kind is not yaml.ScalarEvent:
            stack.append(_Open(value, slot))  # type: ignore[arg-type]  # the list or dict just made
    if type(get_event()) is not yaml.StreamEndEvent:
        raise _NotPlain  # a second document: compose_and_load raises PyYAML's error for it
    return LoadedYaml(root, tuple(duplicates))


_PLAIN_COLLECTION_TAGS = frozenset({None, "!", _SEQ_TAG, _MAP_TAG})


def _scalar(loader: yaml.SafeLoader, constructors: dict[str | None, Any], event: yaml.ScalarEvent) -> object:
    """A scalar's value as the composer resolves its tag and SafeConstructor builds it."""
    tag = event.tag
    if tag is None or tag == "!":
        tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)  # type: ignore[no-untyped-call]
    if tag == _STR_TAG:
        return event.value
    construct = constructors.get(tag)
    if construct is None or tag in _SPECIAL_KEY_TAGS:
        raise _NotPlain  # an unknown tag, a merge or `=` key: PyYAML's own walk says what it makes of it
    try:
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)  # type: ignore[arg-type]
        return construct(loader, node)
    except (yaml.YAMLError, ValueError):
        raise _NotPlain from None
