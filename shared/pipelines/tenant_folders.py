"""The tenants of a deployment as its config folder lists them (one folder per tenant), and "every tenant but this
one": the tenants whose datasets a tenant's SQL may never name (`acme` + `eu_sales` would be tenant `acme_eu`'s).

One function, `other_tenants`, and one cache serve every caller (the pipeline loader, the SQL scope checks of
bigquery.query, quality.check and the table-reference processors, `cloudact query`):

- the folder is listed once per version of it, keyed on its stat (inode, mtime, link count: adding, removing or
  renaming a tenant folder changes them). A listing taken within RACY_WINDOW_NS of the folder's mtime is not trusted
  (a change in the same timestamp tick would leave the mtime as it was) and is taken again on the next call;
- "every tenant but X" is a view over the listing, not a copy, so a pipeline load, a run or a table reference costs
  one stat() and no work per tenant; whose dataset a name would be is a lookup of its `_`-separated prefixes in a
  case-folded index (`owners_of`), not a scan of the tenants.

Every directory counts, whatever its name: a listing errs on the side of refusing a dataset name.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Set
from dataclasses import dataclass
from pathlib import Path

RACY_WINDOW_NS = 2_000_000_000
"""A listing started less than this long after the folder's mtime is taken again next time (see the docstring): the
coarsest directory timestamps (FAT, some network file systems) tick every 2 s."""
_CACHED_FOLDERS_MAX = 16

Stamp = tuple[int, int, int, int]


@dataclass(frozen=True, eq=False)
class TenantListing:
    """The tenant folder names of one version of a config folder, with a case-folded index of them."""

    names: frozenset[str]
    by_folded: Mapping[str, tuple[str, ...]]
    """Lower-cased name -> the names that fold to it, sorted (DuckDB folds identifier case: `ACME_EU` is `acme_eu`)."""

    @classmethod
    def of(cls, names: Iterable[str]) -> TenantListing:
        unique = frozenset(names)
        by_folded: dict[str, list[str]] = {}
        for name in sorted(unique):
            by_folded.setdefault(name.lower(), []).append(name)
        return cls(unique, {folded: tuple(group) for folded, group in by_folded.items()})


EMPTY_LISTING = TenantListing.of(())


class OtherTenants(Set[str]):
    """Every tenant of a listing but `tenant_id`: a read-only set, made in O(1) (no copy of the listing)."""

    __slots__ = ("listing", "tenant_id")

    def __init__(self, listing: TenantListing = EMPTY_LISTING, tenant_id: str | None = None) -> None:
        self.listing = listing
        self.tenant_id = tenant_id

    def __contains__(self, name: object) -> bool:
        return name != self.tenant_id and name in self.listing.names

    def __iter__(self) -> Iterator[str]:
        return (name for name in self.listing.names if name != self.tenant_id)

    def __len__(self) -> int:
        return len(self.listing.names) - (self.tenant_id in self.listing.names)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, OtherTenants) and other.listing is self.listing and other.tenant_id == self.tenant_id:
            return True
        return Set.__eq__(self, other)

    def __hash__(self) -> int:
        return self._hash()

    def __repr__(self) -> str:
        return f"OtherTenants({len(self)} tenants, not {self.tenant_id!r})"

    def owners_of(self, name: str) -> list[str]:
        """The tenants of this set whose datasets `name` would be, sorted: compared case-insensitively, `name` is the
        tenant id itself or starts with the tenant id and `_`. At most one lookup per `_` in `name`."""
        folded = name.lower()
        prefixes = [folded, *(folded[:i] for i, char in enumerate(folded) if char == "_")]
        found = {owner for prefix in prefixes for owner in self.listing.by_folded.get(prefix, ()) if owner in self}
        return sorted(found)


def as_other_tenants(names: Set[str], tenant_id: str | None = None) -> OtherTenants:
    """`names` without `tenant_id`, as an OtherTenants: itself or a view of its listing when it is one already (O(1)),
    else indexed once (a literal set, e.g. in a test)."""
    if isinstance(names, OtherTenants) and tenant_id in (None, names.tenant_id):
        return names
    if isinstance(names, OtherTenants) and names.tenant_id is None:
        return OtherTenants(names.listing, tenant_id)
    return OtherTenants(TenantListing.of(name for name in names if name != tenant_id), tenant_id)


def other_tenants(config_dir: Path | None, tenant_id: str | None) -> OtherTenants:
    """Every tenant with a folder in `config_dir` but `tenant_id` (all of them for None): THE set of other tenants,
    whose dataset names are refused to `tenant_id`'s steps. Empty when there is no such folder."""
    return OtherTenants(tenant_listing(config_dir), tenant_id)


_listings: dict[str, tuple[Stamp, bool, TenantListing]] = {}
"""config folder -> (its stamp when listed, whether that listing may be reused, the listing)."""
_listings_lock = threading.Lock()


def tenant_listing(config_dir: Path | None) -> TenantListing:
    """The tenant folders of `config_dir`, listed once per version of the folder (module docstring)."""
    if config_dir is None:
        return EMPTY_LISTING
    key = os.fspath(config_dir)
    try:
        st = os.stat(key)
    except OSError:
        return EMPTY_LISTING
    stamp = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_nlink)
    with _listings_lock:
        hit = _listings.get(key)
    if hit is not None and hit[0] == stamp and hit[1]:
        return hit[2]
    listed_at = time.time_ns()
    try:
        with os.scandir(key) as entries:
            listing = TenantListing.of(entry.name for entry in entries if entry.is_dir())
    except (NotADirectoryError, FileNotFoundError):
        return EMPTY_LISTING
    reusable = listed_at - st.st_mtime_ns >= RACY_WINDOW_NS
    with _listings_lock:
        if len(_listings) >= _CACHED_FOLDERS_MAX and key not in _listings:
            _listings.pop(next(iter(_listings)))
        _listings[key] = (stamp, reusable, listing)
    return listing


def forget_tenant_listings() -> None:
    with _listings_lock:
        _listings.clear()
