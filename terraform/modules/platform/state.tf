# Firestore (live run state, tenants, keys, claims), KMS (tenant secrets, Pub/Sub and BigQuery encryption) and the
# bucket that holds the source bundle the functions are built from.

resource "google_firestore_database" "state" {
  project                           = var.project_id
  name                              = "(default)"
  location_id                       = var.firestore_location
  type                              = "FIRESTORE_NATIVE"
  concurrency_mode                  = "OPTIMISTIC" # the state port's compare-and-set, no pessimistic locks
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = var.deletion_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy                   = var.deletion_protection ? "ABANDON" : "DELETE"

  depends_on = [google_project_service.apis]
}

# The run listings of the API and the CLI: a tenant's runs newest first, optionally by status and/or pipeline.
resource "google_firestore_index" "runs" {
  for_each = {
    tenant                 = ["tenant_id"]
    tenant_status          = ["tenant_id", "status"]
    tenant_pipeline        = ["tenant_id", "pipeline_id"]
    tenant_status_pipeline = ["tenant_id", "status", "pipeline_id"]
  }
  project    = var.project_id
  database   = google_firestore_database.state.name
  collection = "runs"

  dynamic "fields" {
    for_each = each.value
    content {
      field_path = fields.value
      order      = "ASCENDING"
    }
  }
  fields {
    field_path = "created_at"
    order      = "DESCENDING"
  }
}

# The notification log of the API (GET /tenants/{t}/notifications) and the CLI: a tenant's deliveries newest first,
# optionally by status. A run's deliveries (filtered by run_id) need no composite index: equality filters only.
resource "google_firestore_index" "notifications" {
  for_each = {
    tenant        = ["tenant_id"]
    tenant_status = ["tenant_id", "status"]
  }
  project    = var.project_id
  database   = google_firestore_database.state.name
  collection = "notifications"

  dynamic "fields" {
    for_each = each.value
    content {
      field_path = fields.value
      order      = "ASCENDING"
    }
  }
  fields {
    field_path = "created_at"
    order      = "DESCENDING"
  }
}

resource "google_kms_key_ring" "cdp" {
  project  = var.project_id
  name     = "cdp"
  location = var.region

  depends_on = [google_project_service.apis]
}

resource "google_kms_crypto_key" "secrets" {
  name            = "tenant-secrets"
  key_ring        = google_kms_key_ring.cdp.id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = "7776000s" # 90 days; old versions keep decrypting what they wrapped

  lifecycle {
    prevent_destroy = true
  }
}

resource "google_kms_crypto_key" "pubsub" {
  name            = "pubsub-messages"
  key_ring        = google_kms_key_ring.cdp.id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = "7776000s"

  lifecycle {
    prevent_destroy = true
  }
}

resource "google_kms_crypto_key_iam_member" "pubsub_agent" {
  crypto_key_id = google_kms_crypto_key.pubsub.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.pubsub_agent
}

resource "google_kms_crypto_key" "bigquery" {
  name            = "bigquery-datasets"
  key_ring        = google_kms_key_ring.cdp.id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = "7776000s"

  lifecycle {
    prevent_destroy = true
  }
}

data "google_bigquery_default_service_account" "this" {
  project = var.project_id
}

resource "google_kms_crypto_key_iam_member" "bigquery_agent" {
  crypto_key_id = google_kms_crypto_key.bigquery.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${data.google_bigquery_default_service_account.this.email}"
}

resource "google_storage_bucket" "source" {
  project                     = var.project_id
  name                        = "${var.project_id}-cdp-source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection
  labels                      = { app = "cdp" }

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = 90
    }
    action {
      type = "Delete"
    }
  }

  logging {
    log_bucket = google_storage_bucket.source_logs.name
  }
}

resource "google_storage_bucket" "source_logs" {
  # checkov:skip=CKV_GCP_62:This is the access-log bucket of the source bucket; logging it into itself adds nothing.
  project                     = var.project_id
  name                        = "${var.project_id}-cdp-source-logs"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection
  labels                      = { app = "cdp" }

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = 365
    }
    action {
      type = "Delete"
    }
  }
}
