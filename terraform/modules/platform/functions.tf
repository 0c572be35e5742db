# One Cloud Function (gen2) per entry point of root main.py, all built from the same source bundle. The event
# functions are HTTP services reached only by their push subscriptions (OIDC, internal ingress): that is what lets
# the subscriptions carry our names, retry policy and dead-letter policy.
#
# Terraform is the only owner of the functions, code included: Cloud Build uploads the bundle as
# source/<commit>.zip and runs `terraform apply -var source_object=...`; a new object name is a new build and
# revision of every function. Nothing else deploys them (no `gcloud functions deploy`), so the plan never drifts and
# settings such as api_public are never undone by a deploy.

locals {
  limits                    = module.contract.limits
  push_ack_deadline_seconds = local.limits.push_ack_deadline_seconds
  event_timeout_seconds     = coalesce(var.function_timeout_seconds, local.limits.event_function_timeout_seconds)
}

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

# ------------------------------------------------------------------------------------------------ build identity
# Cloud Build builds each function's container as this account instead of the project's default build account, which
# on projects created since mid-2024 lacks the rights to build (or, on older ones, is far too broad). Least privilege
# per the Cloud Functions doc: write build logs, push the image to the functions' own repository, read the source.
# https://cloud.google.com/functions/docs/securing/build-custom-sa
# https://cloud.google.com/build/docs/cloud-build-service-account-updates
resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "cdp-fn-build"
  display_name = "cdp function builds"
  description  = "Builds the functions' containers: logs, push to cdp-functions, read the source bundle."
}

# The functions' images live here (build_config.docker_repository), so the build account's push right is granted on
# this repository alone; old images are cleaned up.
resource "google_artifact_registry_repository" "functions" {
  # checkov:skip=CKV_GCP_84:Images are built from the public repository's code; Google-managed encryption is enough.
  project       = var.project_id
  location      = var.region
  repository_id = "cdp-functions"
  format        = "DOCKER"
  description   = "Container images of the cdp functions (built by Cloud Build as cdp-fn-build)."
  labels        = { app = "cdp" }

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      tag_state  = "ANY"
      older_than = "30d"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "build_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.build.member
}

resource "google_artifact_registry_repository_iam_member" "build_push" {
  project    = var.project_id
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.build.member
}

resource "google_storage_bucket_iam_member" "build_source" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.build.member
}

# Cloud Functions copies the bundle into its own gcf-v2-sources-<project number>-<region> bucket and builds from
# there (https://cloud.google.com/functions/docs/building). That bucket is created by the service, so it cannot be
# named in a bucket-level grant before it exists: read on it is granted at the project with a condition that names
# the bucket, never on any other bucket. https://cloud.google.com/storage/docs/access-control/iam#conditions
resource "google_project_iam_member" "build_function_sources" {
  project = var.project_id
  role    = "roles/storage.objectViewer"
  member  = google_service_account.build.member

  condition {
    title       = "cdp-gcf-sources-only"
    description = "Only the Cloud Functions source bucket of this project and region."
    expression  = "resource.name.startsWith(\"projects/_/buckets/gcf-v2-sources-${data.google_project.this.number}-${var.region}\")"
  }
}

# ------------------------------------------------------------------------------------------------ functions
resource "google_cloudfunctions2_function" "fn" {
  for_each = module.contract.functions
  project  = var.project_id
  name     = each.value.name
  location = var.region
  labels   = { app = "cdp", function = replace(each.key, "_", "-") }

  build_config {
    runtime           = "python311"
    entry_point       = each.value.entry_point
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id
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
    timeout_seconds                  = each.value.trigger == "http" ? local.limits.http_function_timeout_seconds : local.event_timeout_seconds
    max_instance_count               = var.max_instances
    min_instance_count               = 0
    ingress_settings                 = each.value.trigger == "http" ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    max_instance_request_concurrency = 1
    environment_variables = {
      CLOUDACT_RUNTIME            = "gcp"
      CLOUDACT_JOB_EVENTS_AFTER_S = "60" # job_events.tf wires BigQuery's completion events: long jobs wait for them
      CLOUDACT_PROJECT            = var.project_id
      CLOUDACT_KMS_KEY            = google_kms_crypto_key.secrets.id
      CLOUDACT_BIGQUERY_LOCATION  = var.bigquery_location
      CLOUDACT_TRACE_EXPORTER     = var.trace_exporter
      CLOUDACT_METRICS_EXPORTER   = var.metrics_exporter
      CLOUDACT_FUNCTION           = each.key
      # Only the api opens the admin routes; "" (every other function, or no token yet) counts as unset.
      CLOUDACT_ADMIN_TOKEN_SEALED = each.key == "api" ? var.admin_token_sealed : ""
    }
  }

  lifecycle {
    # A push request that outlives the ack deadline is redelivered while it still runs (README "Timeouts").
    precondition {
      condition     = local.event_timeout_seconds <= local.push_ack_deadline_seconds
      error_message = "function_timeout_seconds must not exceed the push subscriptions' ack deadline (600 s)."
    }
  }

  depends_on = [
    google_project_service.apis,
    time_sleep.build_iam_propagation,
  ]
}

# IAM changes take effect within about a minute; the first build must not start before the build account's grants
# do (the provider's documented example for a build service account waits the same way).
# https://cloud.google.com/iam/docs/access-change-propagation
resource "time_sleep" "build_iam_propagation" {
  create_duration = "60s"

  depends_on = [
    google_project_iam_member.build_logs,
    google_artifact_registry_repository_iam_member.build_push,
    google_storage_bucket_iam_member.build_source,
    google_project_iam_member.build_function_sources,
  ]
}

# ------------------------------------------------------------------------------------------------ who may invoke
# Push subscriptions invoke the event functions; the api function is public when var.api_public (X-API-Key guards it),
# otherwise only var.api_invokers may call it (e.g. a load balancer's or the deployer's identity for the smoke test).
resource "google_cloud_run_service_iam_member" "pusher_invokes" {
  for_each = { for k, f in module.contract.functions : k => f if f.trigger == "pubsub" }
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.fn[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.pusher.member
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

resource "google_cloud_run_service_iam_member" "api_invokers" {
  for_each = var.api_public ? toset([]) : toset(var.api_invokers)
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.fn["api"].service_config[0].service
  role     = "roles/run.invoker"
  member   = each.value
}
