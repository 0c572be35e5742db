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
    # Creating service accounts and their keys-less identities (google_service_account) needs the IAM API.
    # https://cloud.google.com/iam/docs/service-accounts-create#before-you-begin
    "iam.googleapis.com",
    # IAM Credentials API: the functions mint the tenant accounts' access tokens through it (generateAccessToken).
    # https://cloud.google.com/iam/docs/create-short-lived-credentials-direct
    "iamcredentials.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "storage.googleapis.com",
  ]
}

resource "google_project_service" "apis" {
  for_each           = var.enable_apis ? toset(local.services) : toset([])
  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

# Service agents that this configuration grants roles to, or whose resources fail without them, may not exist on a
# fresh project until something asks for them (Pub/Sub's agent in particular is created lazily): generateServiceIdentity
# creates them, idempotently, before anything refers to them.
# https://cloud.google.com/iam/docs/service-agents#create-service-agents
# google provider docs (hashicorp/terraform-provider-google): website/docs/r/project_service_identity
#
# - pubsub: encrypts topics with the pubsub-messages key, forwards dead letters (state.tf, pubsub.tf).
# - cloudscheduler: publishes the Scheduler jobs' messages to Pub/Sub (scheduler.tf, tenant module).
# The BigQuery encryption account is created by its own API call (data.google_bigquery_default_service_account in
# kms.tf). The Cloud Functions and Cloud Run agents are granted nothing here; the function create call uses them.
resource "google_project_service_identity" "pubsub" {
  provider = google-beta
  project  = var.project_id
  service  = "pubsub.googleapis.com"

  depends_on = [google_project_service.apis]
}

resource "google_project_service_identity" "cloudscheduler" {
  provider = google-beta
  project  = var.project_id
  service  = "cloudscheduler.googleapis.com"

  depends_on = [google_project_service.apis]
}
