"""The one set of "other tenants" (shared.pipelines.tenant_folders): re-listed when the config folder changes, never
trusted right after a change, and its dataset-owner lookup refuses exactly what a scan of every tenant refused."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from shared.catalog.loader import parse_pipeline, tenant_of
from shared.pipelines.sql_tables import TableScope, dataset_problem
from shared.pipelines.tenant_folders import (
    RACY_WINDOW_NS,
    OtherTenants,
    TenantListing,
    as_other_tenants,
    forget_tenant_listings,
    other_tenants,
    tenant_listing,
)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    forget_tenant_listings()


def _age(folder: Path) -> None:
    """Date the folder's last change well before now, as in a deployment: its listing may then be reused."""
    old = os.stat(folder).st_mtime_ns - 10 * RACY_WINDOW_NS
    os.utime(folder, ns=(old, old))


def _folders(root: Path, *names: str) -> Path:
    for name in names:
        (root / name / "pipelines").mkdir(parents=True)
    return root


def test_other_tenants_are_every_folder_but_the_tenants_own(tmp_path: Path) -> None:
    root = _folders(tmp_path, "acme", "globex", "initech")
    (root / "README.md").write_text("not a tenant")
    assert set(other_tenants(root, "acme")) == {"globex", "initech"}
    assert "acme" not in other_tenants(root, "acme") and len(other_tenants(root, "acme")) == 2
    assert set(other_tenants(root, None)) == {"acme", "globex", "initech"}
    assert set(other_tenants(tmp_path / "missing", "acme")) == set()
    assert set(other_tenants(None, "acme")) == set()


def test_a_listing_is_reused_until_the_folder_changes(tmp_path: Path) -> None:
    root = _folders(tmp_path, "acme", "globex")
    _age(root)
    first = tenant_listing(root)
    assert tenant_listing(root) is first  # one stat(), no listing
    (root / "acme_eu").mkdir()
    assert set(other_tenants(root, "acme")) == {"globex", "acme_eu"}
    _age(root)
    (root / "globex").rename(root / "umbrella")
    assert set(other_tenants(root, "acme")) == {"umbrella", "acme_eu"}
    _age(root)
    (root / "umbrella" / "pipelines").rmdir()
    (root / "umbrella").rmdir()
    assert set(other_tenants(root, "acme")) == {"acme_eu"}


def test_a_listing_taken_right_after_a_change_is_taken_again(tmp_path: Path) -> None:
    """A second change within the folder's timestamp tick would leave its stamp as it was: such a listing is not
    reused, so the change is still seen."""
    root = _folders(tmp_path, "acme", "initech")
    first = tenant_listing(root)
    assert tenant_listing(root) is not first
    before = os.stat(root)
    (root / "initech").rename(root / "globex")  # same link count...
    os.utime(root, ns=(before.st_atime_ns, before.st_mtime_ns))  # ...and the same mtime tick
    assert set(other_tenants(root, "acme")) == {"globex"}


def test_the_loader_validates_against_the_cached_listing(tmp_path: Path) -> None:
    root = _folders(tmp_path, "acme")
    path = root / "acme" / "pipelines" / "p.yaml"
    tenant, others = tenant_of(path)
    assert tenant == "acme" and set(others) == set()
    (root / "acme_eu").mkdir()
    text = (
        "pipeline_id: p\nsteps:\n  - step_id: q\n    ps_type: bigquery.query\n"
        "    source: {query: 'SELECT 1 AS x FROM acme_eu_sales.t'}\n"
        "    destination: {dataset: out, table: t}\n"
    )
    with pytest.raises(Exception, match="belongs to tenant 'acme_eu'"):
        parse_pipeline(text, "p.yaml", tenant_id="acme", other_tenants=tenant_of(path)[1])


def _scan_owner(dataset: str, marker: str, others: frozenset[str]) -> str | None:
    """What dataset_problem did before the index: every tenant, in sorted order."""
    folded = dataset.lower()
    for other in sorted(others):
        if other != marker and (folded == other.lower() or folded.startswith(other.lower() + "_")):
            return other
    return None


def test_the_owner_lookup_refuses_what_a_scan_of_every_tenant_refused() -> None:
    rng = random.Random(7)
    alphabet = "aAb_"
    for _ in range(3_000):
        names = frozenset("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 5))) for _ in range(6))
        marker = rng.choice([*names, "a"])
        others = frozenset(n for n in names if n != marker or rng.random() < 0.3)
        dataset = marker + "_" + "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 7)))
        scope = TableScope(marker, other_tenants=others)
        expected = _scan_owner(dataset, marker, others)
        problem = dataset_problem(dataset, scope)
        if expected is None:
            assert problem is None, (dataset, sorted(others), problem)
        else:
            assert problem == f"dataset `{dataset}` belongs to tenant {expected!r}", (dataset, sorted(others))


def test_views_compare_and_narrow_without_copying() -> None:
    listing = TenantListing.of({"acme", "globex", "ACME_EU"})
    every = OtherTenants(listing)
    acme = as_other_tenants(every, "acme")
    assert acme.listing is listing and set(acme) == {"globex", "ACME_EU"}
    assert as_other_tenants(acme, "acme") is acme and acme == frozenset({"globex", "ACME_EU"})
    assert acme.owners_of("Acme_Eu_sales") == ["ACME_EU"] and acme.owners_of("acme_sales") == []
    assert set(as_other_tenants(acme, "globex")) == {"ACME_EU"}
    assert hash(acme) == hash(frozenset({"globex", "ACME_EU"}))
