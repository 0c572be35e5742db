# One tenant of tenant_configs/: its BigQuery datasets, its own service account (the identity every BigQuery job and
# GCS read of the tenant runs as), and one Cloud Scheduler job per scheduled pipeline publishing a static
# ScheduleTick to cdp-schedule-ticks.
#
# Isolation by identity: the tenant account holds data roles on this tenant's datasets and declared buckets only, so
# a query that slipped past the SQL checks still cannot read another tenant. The functions hold no BigQuery data
# role at all; they may only mint tokens for the tenant accounts (README "Security").

module "config" {
  source             = "../tenant_config"
  tenant_id          = var.tenant_id
  tenant_configs_dir = var.tenant_configs_dir
}

locals {
  metadata_dataset = "${var.tenant_id}_metadata"
  tenant_member    = "serviceAccount:${google_service_account.tenant.email}"
  # Functions that open a tenant's warehouse (shared/runtime/context.py `warehouse_for`): the stage worker (steps),
  # and every function that records run history (api on cancel and onboarding, run_starter, maintenance). Each
  # acts as the tenant account for that tenant's BigQuery work.
  impersonators = ["api", "run_starter", "stage_worker", "maintenance"]
}

resource "google_service_account" "tenant" {
  project      = var.project_id
  account_id   = module.config.service_account_id
  display_name = "cdp tenant ${var.tenant_id}"
  description  = "Runs tenant ${var.tenant_id}'s BigQuery jobs and GCS reads; data roles on its own datasets and declared buckets only."
}

resource "google_bigquery_dataset" "tenant" {
  for_each                   = module.config.datasets
  project                    = var.project_id
  dataset_id                 = each.value
  location                   = var.bigquery_location
  description                = "cdp tenant ${var.tenant_id}: ${each.value == local.metadata_dataset ? "run history" : "pipeline data"}"
  delete_contents_on_destroy = !var.deletion_protection
  labels                     = { app = "cdp", tenant = replace(var.tenant_id, "_", "-") }

  default_encryption_configuration {
    kms_key_name = var.bigquery_kms_key_id
  }
}

# Dataset-level roles only (google_bigquery_dataset_iam_member; the datasets carry no `access` blocks, which this
# resource would fight). dataEditor on each of the tenant's datasets, run history (`{tenant}_metadata`) included:
# the run history is written through the tenant's warehouse and quality.check writes dq_results from inside a step,
# and with it the tenant can at most alter its own history (steps may not name `metadata`: shared/pipelines).
# https://cloud.google.com/bigquery/docs/access-control#bigquery.dataEditor
resource "google_bigquery_dataset_iam_member" "tenant_data" {
  for_each   = google_bigquery_dataset.tenant
  project    = var.project_id
  dataset_id = each.value.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = local.tenant_member
}

# Running a job needs bigquery.jobs.create on the project; jobUser grants no access to any table (the job reads and
# writes with the dataset roles above) and lets the account see only its own jobs.
# https://cloud.google.com/bigquery/docs/jobs-overview#required_permissions
resource "google_project_iam_member" "tenant_jobs" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = local.tenant_member
}

# Read (get + list objects) on exactly the buckets tenant.yaml declares. Buckets of other projects need the deployer
# to hold storage.buckets.setIamPolicy on them (or their owner grants this role to the `service_account` output).
resource "google_storage_bucket_iam_member" "tenant_reads" {
  for_each = module.config.gcs_buckets
  bucket   = each.value
  role     = "roles/storage.objectViewer"
  member   = local.tenant_member
}

# The functions act as the tenant account through the IAM Credentials API (generateAccessToken), which needs
# iam.serviceAccounts.getAccessToken ON this account: Token Creator granted on the account itself, never on the
# project (that would let them mint tokens for every account of the project).
# https://cloud.google.com/iam/docs/service-account-permissions#token-creator-role
resource "google_service_account_iam_member" "impersonators" {
  for_each           = toset(local.impersonators)
  service_account_id = google_service_account.tenant.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${var.function_service_accounts[each.value]}"
}

resource "google_cloud_scheduler_job" "pipeline" {
  for_each    = module.config.scheduler_jobs
  project     = var.project_id
  region      = var.region
  name        = each.value.name
  description = "cdp: tick ${var.tenant_id}/${each.key} (misfire: ${each.value.misfire})"
  schedule    = each.value.schedule
  time_zone   = each.value.time_zone

  pubsub_target {
    topic_name = var.schedule_ticks_topic_id
    data       = base64encode(each.value.data)
    attributes = each.value.attributes
  }

  retry_config {
    retry_count          = 3
    min_backoff_duration = "10s"
    max_backoff_duration = "300s"
  }
}
