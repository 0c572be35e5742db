# Cloud KMS: the tenant-secrets key (envelope encryption of tenant secrets and the sealed admin token), the key that
# encrypts Pub/Sub messages, and the default key of every tenant dataset. 90-day rotation, prevent_destroy: a key
# cannot be deleted in Cloud KMS anyway, only its versions, and data wrapped with them would be lost.
#
# Locations follow what each service accepts:
# - BigQuery takes a key only from the location of the dataset: a dataset in the `EU` multi-region needs a key in the
#   `europe` KMS multi-region, `US` -> `us`, a regional dataset a key of that same region.
#   https://cloud.google.com/bigquery/docs/customer-managed-encryption#before_you_begin (key location),
#   https://cloud.google.com/kms/docs/locations
#   Hence a second key ring, `cdp-bigquery`, in the location modules/kms_location maps it to (key ring names are
#   per location, and a ring cannot move: https://cloud.google.com/kms/docs/create-key-ring).
# - Pub/Sub: the topics' messages are stored only in var.region (message_storage_policy, pubsub.tf), the region of
#   the `cdp` ring, so the key is always local to where the messages it protects are persisted.
#   https://cloud.google.com/pubsub/docs/encryption, https://cloud.google.com/pubsub/docs/resource-location-restriction

module "bigquery_kms_location" {
  source            = "../kms_location"
  bigquery_location = var.bigquery_location
}

resource "google_kms_key_ring" "cdp" {
  project  = var.project_id
  name     = "cdp"
  location = var.region

  depends_on = [google_project_service.apis]
}

resource "google_kms_key_ring" "bigquery" {
  project  = var.project_id
  name     = "cdp-bigquery"
  location = module.bigquery_kms_location.kms_location

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

# Pub/Sub's service agent wraps each topic's data keys with this key; it must hold the role before a topic names it.
# https://cloud.google.com/pubsub/docs/encryption#using-cmek
resource "google_kms_crypto_key_iam_member" "pubsub_agent" {
  crypto_key_id = google_kms_crypto_key.pubsub.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = google_project_service_identity.pubsub.member
}

resource "google_kms_crypto_key" "bigquery" {
  name            = "bigquery-datasets"
  key_ring        = google_kms_key_ring.bigquery.id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = "7776000s"

  lifecycle {
    prevent_destroy = true
  }
}

# The BigQuery encryption service account (bq-<number>@bigquery-encryption.iam.gserviceaccount.com): asking for it
# creates it, so it exists before the grant below.
# google provider docs (hashicorp/terraform-provider-google): website/docs/d/bigquery_default_service_account
data "google_bigquery_default_service_account" "this" {
  project = var.project_id

  depends_on = [google_project_service.apis]
}

# Every tenant dataset is created with this key as its default: the grant must exist first. The tenant module gets
# the key id through output `kms_bigquery_key_id`, which reads it from this grant (and depends_on it), so no dataset
# is created before BigQuery may use the key.
# https://cloud.google.com/bigquery/docs/customer-managed-encryption#grant_permission
resource "google_kms_crypto_key_iam_member" "bigquery_agent" {
  crypto_key_id = google_kms_crypto_key.bigquery.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${data.google_bigquery_default_service_account.this.email}"
}
