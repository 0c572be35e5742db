# One Cloud Function (gen2) per entry point of root main.py, all built from the same source bundle. The event
# functions are HTTP services reached only by their push subscriptions (OIDC, internal ingress): that is what lets
# the subscriptions carry our names, retry policy and dead-letter policy. Terraform owns each function's shape;
# Cloud Build rolls out new code (`gcloud functions deploy`), so the source is ignored here after creation.

resource "google_service_account" "fn" {
  for_each     = module.contract.functions
  project      = var.project_id
  account_id   = "cdp-fn-${replace(each.key, "_", "-")}"
  display_name = "cdp ${each.key} function"
  description  = "Runs the ${each.key} function; holds only what that function needs."
}

resource "google_service_account" "pusher" {
  project      = var.project_id
  account_id   = "cdp-pubsub-push"
  display_name = "cdp Pub/Sub push"
  description  = "Identity of push subscriptions: may invoke the event functions, nothing else."
}

resource "google_cloudfunctions2_function" "fn" {
  for_each = module.contract.functions
  project  = var.project_id
  name     = each.value.name
  location = var.region
  labels   = { app = "cdp", function = replace(each.key, "_", "-") }

  build_config {
    runtime     = "python311"
    entry_point = each.value.entry_point
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = var.source_object
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.fn[each.key].email
    available_memory                 = var.function_memory
    timeout_seconds                  = each.value.trigger == "http" ? 60 : var.function_timeout_seconds
    max_instance_count               = var.max_instances
    min_instance_count               = 0
    ingress_settings                 = each.value.trigger == "http" ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    max_instance_request_concurrency = 1
    environment_variables = {
      CLOUDACT_RUNTIME           = "gcp"
      CLOUDACT_PROJECT           = var.project_id
      CLOUDACT_KMS_KEY           = google_kms_crypto_key.secrets.id
      CLOUDACT_BIGQUERY_LOCATION = var.bigquery_location
      CLOUDACT_TRACE_EXPORTER    = var.trace_exporter
      CLOUDACT_METRICS_EXPORTER  = var.metrics_exporter
      CLOUDACT_FUNCTION          = each.key
    }
  }

  lifecycle {
    ignore_changes = [build_config[0].source]
  }

  depends_on = [google_project_service.apis]
}

# Push subscriptions invoke the event functions; the api function is public when var.api_public (X-API-Key guards it).
resource "google_cloud_run_service_iam_member" "pusher_invokes" {
  for_each = { for k, f in module.contract.functions : k => f if f.trigger == "pubsub" }
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.fn[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.pusher.email}"
}

resource "google_cloud_run_service_iam_member" "api_public" {
  # checkov:skip=CKV_GCP_102:The API is public by design; every route but /health authenticates with X-API-Key.
  count    = var.api_public ? 1 : 0
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.fn["api"].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}
