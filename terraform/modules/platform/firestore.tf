# Firestore indexes, index exemptions and TTL policies, one declaration per query shape the code issues.
#
# Composite indexes: Firestore serves a query from single-field indexes (automatic) when it filters on one field, or
# only has equality filters (index merging), or orders by the field of its only range filter. Equality on some fields
# plus an order on another needs a composite index with the equality fields first, then the order field.
# https://cloud.google.com/firestore/docs/query-data/index-overview#composite_indexes
# https://cloud.google.com/firestore/docs/query-data/indexing
#
# Every ordered `state.list(...)` of shared/ and the index that serves it (tests/unit/test_terraform_firestore.py
# keeps this list and the code in step):
#   runs           tenant_id [, status] [, pipeline_id] == ; created_at range; order created_at desc
#                  (shared/runs/store.py list_runs: the API's and the CLI's run listings)
#                  status [, pipeline_id] / pipeline_id == ; order created_at desc (operators, every tenant: CLI)
#   notifications  tenant_id [, status] == ; order created_at desc (shared/notify/delivery.py list_deliveries)
#                  status == ; order created_at desc (operators, every tenant: CLI)
#   audit          tenant_id == ; order at desc (shared/tenancy/audit.py list_audit: the admin audit route)
#   tenants        status == ; order tenant_id (shared/tenancy/tenants.py list_tenants: admin route and CLI)
#   parked_stages  tenant_id == ; order parked_at (shared/runs/stage_slots.py pump: a tenant's oldest parked stage)
# Served by single-field indexes (no declaration): runs by finalized/status (watchdog), claims by `at` < (watchdog),
# parked_stages by parked_at < (watchdog), a tenant's stage_slots by holder == / != null (shared/runs/stage_slots.py),
# dead_letters by received_at >= (watchdog), a run's stages by status `in` (engine), api_keys by tenant_id,
# notifications by event_id or by run_id (+ tenant_id, status: equalities only, no order).

# One entry per query shape: the equality fields (ascending, any order serves), then the ordered field.
resource "google_firestore_index" "listing" {
  for_each = {
    "runs/tenant"                 = { collection = "runs", equality = ["tenant_id"], order_by = "created_at", direction = "DESCENDING" }
    "runs/tenant_status"          = { collection = "runs", equality = ["tenant_id", "status"], order_by = "created_at", direction = "DESCENDING" }
    "runs/tenant_pipeline"        = { collection = "runs", equality = ["tenant_id", "pipeline_id"], order_by = "created_at", direction = "DESCENDING" }
    "runs/tenant_status_pipeline" = { collection = "runs", equality = ["tenant_id", "status", "pipeline_id"], order_by = "created_at", direction = "DESCENDING" }
    "runs/status"                 = { collection = "runs", equality = ["status"], order_by = "created_at", direction = "DESCENDING" }
    "runs/pipeline"               = { collection = "runs", equality = ["pipeline_id"], order_by = "created_at", direction = "DESCENDING" }
    "runs/status_pipeline"        = { collection = "runs", equality = ["status", "pipeline_id"], order_by = "created_at", direction = "DESCENDING" }
    "notifications/tenant"        = { collection = "notifications", equality = ["tenant_id"], order_by = "created_at", direction = "DESCENDING" }
    "notifications/tenant_status" = { collection = "notifications", equality = ["tenant_id", "status"], order_by = "created_at", direction = "DESCENDING" }
    "notifications/status"        = { collection = "notifications", equality = ["status"], order_by = "created_at", direction = "DESCENDING" }
    "audit/tenant"                = { collection = "audit", equality = ["tenant_id"], order_by = "at", direction = "DESCENDING" }
    "tenants/status"              = { collection = "tenants", equality = ["status"], order_by = "tenant_id", direction = "ASCENDING" }
    "parked_stages/tenant"        = { collection = "parked_stages", equality = ["tenant_id"], order_by = "parked_at", direction = "ASCENDING" }
  }
  project    = var.project_id
  database   = google_firestore_database.state.name
  collection = each.value.collection

  dynamic "fields" {
    for_each = each.value.equality
    content {
      field_path = fields.value
      order      = "ASCENDING"
    }
  }
  fields {
    field_path = each.value.order_by
    order      = each.value.direction
  }
}

# TTL: Firestore deletes a document (typically within 24 hours) once the Timestamp in `expire_at` has passed; the
# code writes `expire_at` on these collection groups (`stages` is the runs/{run}/stages sub-collection: deleting a
# run does not delete its stages, so they carry their own, like `snapshot`, the run's pipeline snapshot
# runs/{run}/snapshot/spec, and `arrivals`, a wide join's groups of ended dependencies; `events` are the notifier's
# received run events).
# The Firestore adapter stores `expire_at` as a Timestamp (shared/ports/state.py); a document without the field, or
# with a value that is not a Timestamp, is never deleted. The field is exempt from indexing: nothing queries it, and an index on a
# near-monotonic timestamp only adds write cost and hot-spotting.
# https://cloud.google.com/firestore/docs/ttl
resource "google_firestore_field" "ttl" {
  for_each = toset([
    "ratelimits", "claims", "idempotency", "runs", "stages", "snapshot", "arrivals", "events", "notifications",
    "audit", "dead_letters", "parked_stages",
  ])
  project    = var.project_id
  database   = google_firestore_database.state.name
  collection = each.value
  field      = "expire_at"

  ttl_config {}
  index_config {}
}

# Index exemptions: large maps, arrays and free text that no query filters or orders on. Every field is indexed by
# default (each map key and array element too), which costs write time and storage and counts against the
# 40,000 index entries per document. `index_config {}` removes every single-field index of the field.
# https://cloud.google.com/firestore/docs/query-data/indexing#exemptions
# https://cloud.google.com/firestore/quotas#indexes
resource "google_firestore_field" "unindexed" {
  for_each = {
    "runs/spec"           = { collection = "runs", field = "spec" }           # runs recorded with their snapshot inline
    "snapshot/spec_z"     = { collection = "snapshot", field = "spec_z" }     # the compressed pipeline snapshot
    "runs/parameters"     = { collection = "runs", field = "parameters" }     # the run's parameter values
    "runs/error"          = { collection = "runs", field = "error" }          # free text
    "stages/attempts"     = { collection = "stages", field = "attempts" }     # one map per attempt
    "stages/details"      = { collection = "stages", field = "details" }      # processor-specific results
    "stages/parents_done" = { collection = "stages", field = "parents_done" } # dependency -> its end status
    "stages/error"        = { collection = "stages", field = "error" }        # free text
    "audit/details"       = { collection = "audit", field = "details" }       # what changed
    "notifications/text"  = { collection = "notifications", field = "text" }  # the message, up to 4000 chars
    "notifications/error" = { collection = "notifications", field = "error" } # free text
    "dead_letters/reason" = { collection = "dead_letters", field = "reason" } # free text
  }
  project    = var.project_id
  database   = google_firestore_database.state.name
  collection = each.value.collection
  field      = each.value.field

  index_config {}
}

