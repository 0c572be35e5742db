"""Dataset and table management of the BigQuery warehouse: look datasets up, create (provisioning only), list and
drop them; list, look up and create tables. Mixed into BigQueryWarehouse (shared/adapters/bigquery_warehouse.py),
whose client, identity, retry and timeouts it uses; the query, load and job paths stay there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from shared.adapters.bigquery_errors import mapped_errors
from shared.adapters.bigquery_values import checked_name, to_bigquery_schema
from shared.errors import TerminalError
from shared.ports.warehouse import PROVISION_HINT, DatasetCreationRefused, TableInfo

if TYPE_CHECKING:
    from google.cloud import bigquery


class BigQueryDatasets:
    # Provided by BigQueryWarehouse.
    _bq: Any
    """The google.cloud.bigquery module (imported by the warehouse only when it is built)."""
    _client: bigquery.Client
    _project: str
    _location: str
    _tenant_id: str | None
    _dataset_writer: str | None
    _retry: Any
    _timeout: float
    identity: str

    def require_dataset(self, dataset: str) -> None:
        """Look the dataset up (bigquery.datasets.get, which a dataset-level role grants); never create it."""
        from google.api_core.exceptions import NotFound

        ref = f"{self._project}.{checked_name(dataset)}"
        with mapped_errors(f"dataset {dataset}", self.identity):
            try:
                self._client.get_dataset(ref, retry=self._retry, timeout=self._timeout)
                return
            except NotFound:
                pass
        hint = PROVISION_HINT.format(tenant=self._tenant_id or "TENANT")
        raise TerminalError(f"BigQuery dataset {ref} does not exist; {hint}")

    def create_dataset(self, dataset: str) -> bool:
        """Provisioning (onboarding, `cloudact tenants provision`): needs bigquery.datasets.create on the project,
        which the tenant's own account does not hold: build this warehouse with the operator's or the onboarding
        function's credentials."""
        from google.api_core.exceptions import Conflict, Forbidden

        ds = self._bq.Dataset(f"{self._project}.{checked_name(dataset)}")
        ds.location = self._location
        with mapped_errors(f"creating dataset {dataset}", self.identity):
            try:
                ds = self._client.create_dataset(ds, retry=self._retry, timeout=self._timeout)
            except Conflict:
                return False
            except Forbidden as exc:  # checked before existence: also what a Terraform-made dataset answers
                raise DatasetCreationRefused(
                    f"BigQuery refused to create dataset {dataset} as {self.identity} (bigquery.datasets.create on "
                    f"project {self._project}); {PROVISION_HINT.format(tenant=self._tenant_id or 'TENANT')} as an "
                    "identity that holds it"
                ) from exc
            if self._dataset_writer:  # read-modify-write of the access list: the creator's defaults are kept
                entry = self._bq.AccessEntry("WRITER", "userByEmail", self._dataset_writer)
                ds.access_entries = [*ds.access_entries, entry]
                self._client.update_dataset(ds, ["access_entries"], retry=self._retry, timeout=self._timeout)
        return True

    def list_datasets(self) -> list[str]:
        """The tenant's datasets: `{tenant}_...` (no tenant id's datasets can be another's, see onboarding)."""
        if not self._tenant_id:
            raise TerminalError("this warehouse belongs to no tenant: it cannot tell which datasets are whose")
        prefix = f"{self._tenant_id}_"
        with mapped_errors("listing datasets", self.identity):
            found = self._client.list_datasets(self._project, retry=self._retry, timeout=self._timeout)
            return sorted(d.dataset_id for d in found if d.dataset_id.startswith(prefix))

    def drop_dataset(self, dataset: str) -> bool:
        from google.api_core.exceptions import NotFound

        if dataset not in self.list_datasets():
            return False
        ref = f"{self._project}.{checked_name(dataset)}"
        with mapped_errors(f"dropping dataset {dataset}", self.identity):
            try:
                self._client.delete_dataset(ref, delete_contents=True, retry=self._retry, timeout=self._timeout)
            except NotFound:
                return False
        return True

    def list_tables(self, dataset: str) -> list[TableInfo]:
        """Tables and views of one dataset; row counts from each table's metadata (numRows: no query, no cost)."""
        from google.api_core.exceptions import NotFound

        ref = f"{self._project}.{checked_name(dataset)}"
        out: list[TableInfo] = []
        with mapped_errors(f"listing tables of {dataset}", self.identity):
            try:
                items = list(self._client.list_tables(ref, retry=self._retry, timeout=self._timeout))
            except NotFound:
                return []
            for item in sorted(items, key=lambda t: str(t.table_id)):
                if item.table_type == "VIEW":
                    out.append(TableInfo(dataset, str(item.table_id), "view", None))
                    continue
                table = self._client.get_table(item.reference, retry=self._retry, timeout=self._timeout)
                rows = table.num_rows
                out.append(TableInfo(dataset, str(item.table_id), "table", int(rows) if rows is not None else None))
        return out

    def table_exists(self, table: str) -> bool:
        from google.api_core.exceptions import NotFound

        try:
            with mapped_errors(f"looking up {table}", self.identity):
                self._client.get_table(self._ref(table), retry=self._retry, timeout=self._timeout)
        except TerminalError as e:
            if isinstance(e.__cause__, NotFound):
                return False
            raise
        return True

    def create_table(
        self,
        table: str,
        schema: pa.Schema,
        partition_field: str | None = None,
        cluster_by: Sequence[str] = (),
    ) -> None:
        """Create the table if missing: DAY time partitioning on `partition_field`, clustering on `cluster_by`."""
        bq_table = self._bq.Table(self._ref(table), schema=to_bigquery_schema(schema))
        if partition_field:
            bq_table.time_partitioning = self._bq.TimePartitioning(
                type_=self._bq.TimePartitioningType.DAY, field=partition_field
            )
        if cluster_by:
            bq_table.clustering_fields = list(cluster_by)
        with mapped_errors(f"creating {table}", self.identity):
            self._client.create_table(bq_table, exists_ok=True, retry=self._retry, timeout=self._timeout)

    # -- internals -----------------------------------------------------------------------------------------------

    def _ref(self, table: str) -> str:
        parts = table.replace("`", "").split(".")
        if len(parts) == 2:
            parts = [self._project, *parts]
        if len(parts) != 3:
            raise TerminalError(f"table must be named 'dataset.table', got {table!r}")
        return ".".join(checked_name(p) for p in parts)
