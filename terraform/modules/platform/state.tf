# Firestore (live run state, tenants, keys, claims) and the bucket that holds the source bundle the functions are built
# from. Its indexes, index exemptions and TTL policies are in firestore.tf, the KMS keys in kms.tf.

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
