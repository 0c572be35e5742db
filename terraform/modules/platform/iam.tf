# Least privilege, per function. Project-wide roles are only those Google offers no narrower scope for (Firestore
# data access, writing traces/metrics/logs); publishing is granted per topic, KMS per key.
#
# No function holds any BigQuery role: every BigQuery job and GCS read of a tenant runs as that tenant's own service
# account (tenant module), which the functions that open a tenant's warehouse may impersonate (Token Creator on
# each tenant account, granted there). Datasets are created by the tenant module, not at run time.

locals {
  # Functions that read or write Firestore state: all of them.
  firestore_users = keys(module.contract.functions)
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

# The api's operator routes list, replay and purge dead letters (shared/runs/dead_letters.py, /api/v1/admin/dead-
# letters): they pull the inspect subscription (peek, then hand the lease back) and ack what was replayed or purged.
# Found by `make gcp-parity` (reliability/parity/iam.py). https://cloud.google.com/pubsub/docs/access-control#roles
resource "google_pubsub_subscription_iam_member" "dead_letter_operators" {
  project      = var.project_id
  subscription = google_pubsub_subscription.dead_letter_inspect.name
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${google_service_account.fn["api"].email}"
}
