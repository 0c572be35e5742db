# Least privilege, per function. Project-wide roles are only those Google offers no narrower scope for (Firestore
# data access, BigQuery job creation, writing traces/metrics/logs); publishing is granted per topic, KMS per key,
# dataset access per tenant dataset (in the tenant module).

locals {
  # Functions that read or write Firestore state: all of them.
  firestore_users = keys(module.contract.functions)
  # Functions that run BigQuery jobs: processors (stage_worker), run history (every function that can finalise a
  # run: api via cancel, run_starter, stage_worker, maintenance) and tenant onboarding (api).
  bigquery_job_users = ["api", "run_starter", "stage_worker", "maintenance"]
  # Functions that open tenant secrets (source credentials, webhook URLs) or seal them (api).
  kms_users       = ["api", "stage_worker", "notifier"]
  telemetry_roles = ["roles/cloudtrace.agent", "roles/monitoring.metricWriter", "roles/logging.logWriter"]

  publish_grants = merge([
    for fn, f in module.contract.functions : { for t in f.publishes : "${fn}/${t}" => { function = fn, topic = t } }
  ]...)
  telemetry_grants = merge([
    for fn in keys(module.contract.functions) : { for r in local.telemetry_roles : "${fn}/${r}" => { function = fn, role = r } }
  ]...)
}

resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = local.publish_grants
  project  = var.project_id
  topic    = google_pubsub_topic.topic[each.value.topic].name
  role     = "roles/pubsub.publisher"
  member   = "serviceAccount:${google_service_account.fn[each.value.function].email}"
}

resource "google_project_iam_member" "firestore" {
  for_each = toset(local.firestore_users)
  project  = var.project_id
  role     = "roles/datastore.user"
  member   = "serviceAccount:${google_service_account.fn[each.value].email}"
}

resource "google_project_iam_member" "bigquery_jobs" {
  for_each = toset(local.bigquery_job_users)
  project  = var.project_id
  role     = "roles/bigquery.jobUser"
  member   = "serviceAccount:${google_service_account.fn[each.value].email}"
}

# Onboarding a tenant through the API creates its `{tenant}_metadata` dataset.
resource "google_project_iam_member" "api_creates_datasets" {
  project = var.project_id
  role    = "roles/bigquery.user"
  member  = "serviceAccount:${google_service_account.fn["api"].email}"
}

resource "google_project_iam_member" "telemetry" {
  for_each = local.telemetry_grants
  project  = var.project_id
  role     = each.value.role
  member   = "serviceAccount:${google_service_account.fn[each.value.function].email}"
}

resource "google_kms_crypto_key_iam_member" "secrets" {
  for_each      = toset(local.kms_users)
  crypto_key_id = google_kms_crypto_key.secrets.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${google_service_account.fn[each.value].email}"
}
