"""A small evaluator of Terraform expressions, for reading terraform/ as plan would see it without the google provider.

python-hcl2 parses the files but leaves expressions as text (`"${merge([for fn, f in module.contract.functions :
...] ...)}"`); no google provider can be installed here, so Terraform cannot plan the modules with resources. This
evaluates the expression language itself (literals, templates, references, operators, conditionals, for
expressions, splats and the functions the repo uses) against a `Scope` the caller supplies; a resource attribute only
known after apply is a `Computed` placeholder. Anything outside that subset raises `Unsupported` naming the text, so an
audit built on it says what it could not read instead of guessing.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class Unsupported(ValueError):
    """The expression uses syntax or a function this evaluator does not implement."""


@dataclass(frozen=True)
class Computed:
    """A value only known after apply (e.g. a function's URL): kept as a readable placeholder."""

    what: str

    def __str__(self) -> str:
        return f"<{self.what}>"


Resolver = Callable[[str], Any]
"""Looks up a root name (`var`, `local`, `each`, `module`, `data`, a resource type, an iterator variable)."""

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
    | (?P<heredoc><<-?[A-Z]+)
    | (?P<str>")
    | (?P<op>\.\.\.|=>|==|!=|<=|>=|&&|\|\||[-+*/%!<>?:=.,()\[\]{}])
    | (?P<name>[A-Za-z_][A-Za-z0-9_-]*)
    )""",
    re.VERBOSE,
)


class _Parser:
    """Recursive descent over the expression grammar of the HCL native syntax (the parts Terraform configs use)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    # -- tokens
    def _skip(self) -> None:
        while self.pos < len(self.text):
            if self.text[self.pos].isspace():
                self.pos += 1
            elif self.text.startswith("#", self.pos) or self.text.startswith("//", self.pos):
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            else:
                return

    def peek(self) -> tuple[str, str]:
        self._skip()
        if self.pos >= len(self.text):
            return ("eof", "")
        m = _TOKEN.match(self.text, self.pos)
        if not m:
            raise Unsupported(f"cannot read {self.text[self.pos : self.pos + 30]!r} in {self.text!r}")
        kind = m.lastgroup or ""
        return (kind, m.group(kind))

    def take(self, expected: str | None = None) -> tuple[str, str]:
        kind, value = self.peek()
        if expected is not None and value != expected:
            raise Unsupported(f"expected {expected!r} at {self.text[self.pos : self.pos + 30]!r} in {self.text!r}")
        m = _TOKEN.match(self.text, self.pos)
        assert m is not None
        self.pos = m.end()
        return (kind, value)

    def accept(self, value: str) -> bool:
        if self.peek()[1] == value and self.peek()[0] in ("op", "name"):
            self.take()
            return True
        return False

    # -- grammar (each node is a tuple: (kind, ...))
    def expression(self) -> Any:
        cond = self.binary(0)
        if self.accept("?"):
            yes = self.expression()
            self.take(":")
            no = self.expression()
            return ("cond", cond, yes, no)
        return cond

    _LEVELS = (("||",), ("&&",), ("==", "!="), ("<", "<=", ">", ">="), ("+", "-"), ("*", "/", "%"))

    def binary(self, level: int) -> Any:
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek()[0] == "op" and self.peek()[1] in self._LEVELS[level]:
            op = self.take()[1]
            left = ("bin", op, left, self.binary(level + 1))
        return left

    def unary(self) -> Any:
        if self.peek() == ("op", "!"):
            self.take()
            return ("not", self.unary())
        if self.peek() == ("op", "-"):
            self.take()
            return ("neg", self.unary())
        return self.postfix(self.primary())

    def postfix(self, node: Any) -> Any:
        while True:
            kind, value = self.peek()
            if value == "." and kind == "op":
                self.take()
                if self.accept("*"):
                    node = ("splat", node, [])
                    continue
                k, attr = self.take()
                node = ("attr", node, attr) if k == "name" else ("index", node, ("lit", int(float(attr))))
            elif value == "[" and kind == "op":
                self.take()
                if self.accept("*"):
                    self.take("]")
                    node = ("splat", node, [])
                    continue
                index = self.expression()
                self.take("]")
                node = ("index", node, index)
            else:
                return node

    def primary(self) -> Any:
        kind, value = self.peek()
        if kind == "num":
            self.take()
            return ("lit", float(value) if any(c in value for c in ".eE") else int(value))
        if kind == "str":
            return self.template()
        if kind == "heredoc":
            raise Unsupported(f"heredoc in {self.text!r}")
        if value == "(":
            self.take()
            inner = self.expression()
            self.take(")")
            return inner
        if value == "[":
            return self.tuple_or_for()
        if value == "{":
            return self.object_or_for()
        if kind == "name":
            self.take()
            if value in ("true", "false"):
                return ("lit", value == "true")
            if value == "null":
                return ("lit", None)
            if self.peek() == ("op", "("):
                return self.call(value)
            return ("ref", value)
        raise Unsupported(f"unexpected {value!r} in {self.text!r}")

    def call(self, name: str) -> Any:
        self.take("(")
        args: list[Any] = []
        expand = False
        while not self.accept(")"):
            args.append(self.expression())
            if self.accept("..."):
                expand = True
            if not self.accept(","):
                self.take(")")
                break
        return ("call", name, args, expand)

    def tuple_or_for(self) -> Any:
        self.take("[")
        if self.peek() == ("name", "for"):
            self.take()
            names = self.for_names()
            collection = self.expression()
            self.take(":")
            value = self.expression()
            cond = self.expression() if self.accept("if") else None
            self.take("]")
            return ("for_list", names, collection, value, cond)
        items = []
        while not self.accept("]"):
            items.append(self.expression())
            if not self.accept(","):
                self.take("]")
                break
        return ("tuple", items)

    def for_names(self) -> list[str]:
        names = [self.take()[1]]
        if self.accept(","):
            names.append(self.take()[1])
        self.take("in")
        return names

    def object_or_for(self) -> Any:
        self.take("{")
        if self.peek() == ("name", "for"):
            self.take()
            names = self.for_names()
            collection = self.expression()
            self.take(":")
            key_node = self.expression()
            self.take("=>")
            value_node = self.expression()
            group = self.accept("...")
            cond = self.expression() if self.accept("if") else None
            self.take("}")
            return ("for_map", names, collection, key_node, value_node, cond, group)
        items = []
        while not self.accept("}"):
            kind, value = self.peek()
            if kind == "name" and self.text[self.pos :].lstrip().startswith(value):
                save = self.pos
                self.take()
                if self.peek()[1] in ("=", ":"):
                    key: Any = ("lit", value)
                else:
                    self.pos = save
                    key = self.expression()
            else:
                key = self.expression()
            if not (self.accept("=") or self.accept(":")):
                raise Unsupported(f"object element without '=' in {self.text!r}")
            items.append((key, self.expression()))
            self.accept(",")
        return ("object", items)

    def template(self) -> Any:
        """A quoted string with `${...}` interpolations (nested quotes inside them are fine)."""
        self.take()  # opening quote
        parts: list[Any] = []
        buf: list[str] = []
        text = self.text
        while True:
            if self.pos >= len(text):
                raise Unsupported(f"unterminated string in {text!r}")
            ch = text[self.pos]
            if ch == '"':
                self.pos += 1
                break
            if ch == "\\":
                nxt = text[self.pos + 1]
                buf.append({"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}.get(nxt, nxt))
                self.pos += 2
            elif text.startswith("$${", self.pos):
                buf.append("${")
                self.pos += 3
            elif text.startswith("${", self.pos):
                if buf:
                    parts.append(("lit", "".join(buf)))
                    buf = []
                self.pos += 2
                parts.append(self.expression())
                self._skip()
                self.take("}")
            elif text.startswith("%{", self.pos):
                raise Unsupported(f"template directive in {text!r}")
            else:
                buf.append(ch)
                self.pos += 1
        if buf or not parts:
            parts.append(("lit", "".join(buf)))
        return parts[0] if len(parts) == 1 and parts[0][0] == "lit" else ("template", parts)


def parse(text: str) -> Any:
    parser = _Parser(text)
    node = parser.expression()
    if parser.peek()[0] != "eof":
        raise Unsupported(f"trailing text {text[parser.pos :]!r}")
    return node


def evaluate_value(value: Any, resolve: Resolver) -> Any:
    """A value as python-hcl2 gives it (quotes stripped): strings may hold `${...}`; lists and dicts recurse."""
    if isinstance(value, str):
        if "${" not in value:
            return value
        whole = re.fullmatch(r"\$\{(.*)\}", value, re.DOTALL)
        if whole and _balanced(whole.group(1)):
            return evaluate(parse(whole.group(1)), resolve)
        return evaluate(parse(f'"{value}"'), resolve)  # hcl2 keeps the string's source text: quote it again
    if isinstance(value, list):
        return [evaluate_value(v, resolve) for v in value]
    if isinstance(value, dict):
        return {k: evaluate_value(v, resolve) for k, v in value.items() if not k.startswith("__")}
    return value


def _balanced(inner: str) -> bool:
    """`${a}-${b}` is a template, not one interpolation: the braces of the first must close at the very end."""
    depth = 0
    for i, ch in enumerate(inner):
        depth += ch == "{"
        depth -= ch == "}"
        if depth < 0:
            return False
        if i == len(inner) - 1:
            return depth == 0
    return True


def evaluate(node: Any, resolve: Resolver) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "template":
        return "".join(_str(evaluate(p, resolve)) for p in node[1])
    if kind == "ref":
        return resolve(node[1])
    if kind == "attr":
        base = evaluate(node[1], resolve)
        return _attr(base, node[2])
    if kind == "index":
        base = evaluate(node[1], resolve)
        key = evaluate(node[2], resolve)
        if isinstance(base, Computed):
            return Computed(f"{base.what}[{key}]")
        if isinstance(base, (list, tuple)):
            return base[int(key)]
        if isinstance(base, Mapping):
            if key not in base:
                raise Unsupported(f"no key {key!r} in {sorted(base)[:10]}")
            return base[key]
        raise Unsupported(f"cannot index {type(base).__name__}")
    if kind == "splat":
        base = evaluate(node[1], resolve)
        return list(base.values()) if isinstance(base, Mapping) else list(base)
    if kind == "tuple":
        return [evaluate(i, resolve) for i in node[1]]
    if kind == "object":
        return {_str(evaluate(k, resolve)): evaluate(v, resolve) for k, v in node[1]}
    if kind == "not":
        return not evaluate(node[1], resolve)
    if kind == "neg":
        return -evaluate(node[1], resolve)
    if kind == "cond":
        return evaluate(node[2] if evaluate(node[1], resolve) else node[3], resolve)
    if kind == "bin":
        return _binary(node[1], node[2], node[3], resolve)
    if kind == "call":
        return _call(node[1], node[2], node[3], resolve)
    if kind in ("for_list", "for_map"):
        return _for(node, resolve)
    raise Unsupported(f"node {kind}")


def _attr(base: Any, name: str) -> Any:
    if isinstance(base, Computed):
        return Computed(f"{base.what}.{name}")
    if isinstance(base, Mapping):
        try:
            return base[name]
        except KeyError:
            raise Unsupported(f"no attribute {name!r} (has {sorted(base)[:12]})") from None
    raise Unsupported(f"attribute {name!r} of {type(base).__name__}")


def _str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _binary(op: str, left_node: Any, right_node: Any, resolve: Resolver) -> Any:
    left = evaluate(left_node, resolve)
    if op == "&&":
        return bool(left) and bool(evaluate(right_node, resolve))
    if op == "||":
        return bool(left) or bool(evaluate(right_node, resolve))
    right = evaluate(right_node, resolve)
    ops: dict[str, Callable[[Any, Any], Any]] = {
        "==": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
        "+": lambda a, b: a + b,
        "-": lambda a, b: a - b,
        "*": lambda a, b: a * b,
        "/": lambda a, b: a / b,
        "%": lambda a, b: a % b,
    }
    return ops[op](left, right)


def _items(collection: Any) -> list[tuple[Any, Any]]:
    if isinstance(collection, Mapping):
        return sorted(collection.items(), key=lambda kv: str(kv[0]))
    if isinstance(collection, (set, frozenset)):
        return [(v, v) for v in sorted(collection, key=str)]
    if isinstance(collection, (list, tuple)):
        return list(enumerate(collection))
    raise Unsupported(f"cannot iterate {type(collection).__name__}")


def _for(node: Any, resolve: Resolver) -> Any:
    names = node[1]
    collection = evaluate(node[2], resolve)
    out_list: list[Any] = []
    out_map: dict[str, Any] = {}
    for key, value in _items(collection):
        bound = dict(zip(names, (key, value) if len(names) == 2 else (value,), strict=True))

        def inner(name: str, _bound: dict[str, Any] = bound) -> Any:
            return _bound[name] if name in _bound else resolve(name)

        cond = node[4] if node[0] == "for_list" else node[5]
        if cond is not None and not evaluate(cond, inner):
            continue
        if node[0] == "for_list":
            out_list.append(evaluate(node[3], inner))
        else:
            k = _str(evaluate(node[3], inner))
            v = evaluate(node[4], inner)
            if node[6]:
                out_map.setdefault(k, []).append(v)
            else:
                out_map[k] = v
    return out_list if node[0] == "for_list" else out_map


def _flatten(items: Any) -> list[Any]:
    out: list[Any] = []
    for item in items:
        out.extend(_flatten(item) if isinstance(item, (list, tuple)) else [item])
    return out


def _try(args: list[Any], resolve: Resolver) -> Any:
    for arg in args:
        try:
            return evaluate(arg, resolve)
        except (Unsupported, KeyError, IndexError, TypeError, ValueError, AttributeError):
            continue
    raise Unsupported("try(): no argument could be evaluated")


def _can(args: list[Any], resolve: Resolver) -> bool:
    try:
        evaluate(args[0], resolve)
        return True
    except (Unsupported, KeyError, IndexError, TypeError, ValueError, AttributeError):
        return False


_LAZY: dict[str, Callable[[list[Any], Resolver], Any]] = {"try": _try, "can": _can}

_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "toset": lambda xs: sorted(set(xs), key=str),
    "tolist": lambda xs: list(xs),
    "tomap": lambda m: dict(m),
    "tostring": lambda x: _str(x) if not isinstance(x, (list, dict)) else (_ for _ in ()).throw(TypeError("tostring")),
    "tonumber": lambda x: float(x) if "." in str(x) else int(x),
    "keys": lambda m: sorted(m),
    "values": lambda m: [m[k] for k in sorted(m)],
    "merge": lambda *ms: {k: v for m in ms for k, v in m.items()},
    "concat": lambda *ls: [x for items in ls for x in items],
    "flatten": _flatten,
    "distinct": lambda xs: list(dict.fromkeys(xs)),
    "length": lambda x: len(x),
    "contains": lambda xs, x: x in xs,
    "lookup": lambda m, k, *default: m[k] if k in m or not default else default[0],
    "coalesce": lambda *xs: next(x for x in xs if x not in (None, "")),
    "replace": lambda s, a, b: (
        re.sub(a[1:-1], b.replace("$", "\\"), s)
        if len(a) > 1 and a.startswith("/") and a.endswith("/")
        else s.replace(a, b)
    ),
    "lower": lambda s: s.lower(),
    "upper": lambda s: s.upper(),
    "join": lambda sep, xs: sep.join(_str(x) for x in xs),
    "split": lambda sep, s: s.split(sep),
    "format": lambda fmt, *xs: re.sub(r"%[sdv]", "{}", fmt).format(*xs),
    "startswith": lambda s, p: s.startswith(p),
    "endswith": lambda s, p: s.endswith(p),
    "trimsuffix": lambda s, p: s[: -len(p)] if p and s.endswith(p) else s,
    "trimprefix": lambda s, p: s[len(p) :] if p and s.startswith(p) else s,
    "trim": lambda s, chars: s.strip(chars),
    "substr": lambda s, start, n: s[start : start + n] if n >= 0 else s[start:],
    "sha256": lambda s: hashlib.sha256(s.encode()).hexdigest(),
    "jsonencode": lambda x: json.dumps(x, separators=(",", ":")),
    "min": lambda *xs: min(xs),
    "max": lambda *xs: max(xs),
    "sort": lambda xs: sorted(xs),
    "setunion": lambda *ss: sorted({x for s in ss for x in s}, key=str),
    "element": lambda xs, i: xs[i % len(xs)],
    "one": lambda xs: xs[0] if xs else None,
    "abs": abs,
    "floor": lambda x: int(x // 1),
    "ceil": lambda x: -int(-x // 1),
    "regex": lambda pattern, s: re.search(pattern, s).group(0),  # type: ignore[union-attr]
}


def _call(name: str, arg_nodes: list[Any], expand: bool, resolve: Resolver) -> Any:
    if name in _LAZY:
        return _LAZY[name](arg_nodes, resolve)
    fn = _FUNCTIONS.get(name)
    if fn is None:
        raise Unsupported(f"function {name}() is not implemented by reliability/parity/hcl.py")
    args = [evaluate(a, resolve) for a in arg_nodes]
    if expand:
        args = [*args[:-1], *args[-1]]
    if any(isinstance(a, Computed) for a in args):
        return Computed(f"{name}(...)")
    return fn(*args)
