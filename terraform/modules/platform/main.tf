# The platform: APIs, Pub/Sub wiring, functions and their service accounts, Firestore, KMS, the maintenance job and
# the source bucket. Names come from the provider-less `contract` module, which tests compare with the code.

module "contract" {
  source               = "../contract"
  tenant_configs_dir   = var.tenant_configs_dir
  maintenance_schedule = var.maintenance_schedule
}

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  services = [
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudkms.googleapis.com",
    "cloudscheduler.googleapis.com",
    "cloudtrace.googleapis.com",
    "firestore.googleapis.com",
    # IAM Credentials API: the functions mint the tenant accounts' access tokens through it (generateAccessToken).
    # https://cloud.google.com/iam/docs/create-short-lived-credentials-direct
    "iamcredentials.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "storage.googleapis.com",
  ]
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_project_service" "apis" {
  for_each           = var.enable_apis ? toset(local.services) : toset([])
  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
