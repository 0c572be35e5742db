# One tenant of tenant_configs/: its BigQuery datasets with access for exactly the functions that touch them, and one
# Cloud Scheduler job per scheduled pipeline publishing a static ScheduleTick to cdp-schedule-ticks.

module "config" {
  source             = "../tenant_config"
  tenant_id          = var.tenant_id
  tenant_configs_dir = var.tenant_configs_dir
}

locals {
  metadata_dataset = "${var.tenant_id}_metadata"
  # Run history is written by whichever function finalises a run; data datasets only by the stage worker.
  metadata_writers = ["api", "run_starter", "stage_worker", "maintenance"]
  grants = merge(
    { for fn in local.metadata_writers : "${local.metadata_dataset}/${fn}" => { dataset = local.metadata_dataset, function = fn } },
    { for d in module.config.datasets : "${d}/stage_worker" => { dataset = d, function = "stage_worker" } if d != local.metadata_dataset },
  )
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

resource "google_bigquery_dataset_iam_member" "writer" {
  for_each   = local.grants
  project    = var.project_id
  dataset_id = google_bigquery_dataset.tenant[each.value.dataset].dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${var.function_service_accounts[each.value.function]}"
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
