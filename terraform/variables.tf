variable "project_id" {
  description = "The GCP project to deploy into."
  type        = string
}

variable "region" {
  description = "Region of the functions, Scheduler jobs and KMS key ring."
  type        = string
  default     = "europe-west1"
}

variable "firestore_location" {
  description = "Firestore location."
  type        = string
  default     = "eur3"
}

variable "bigquery_location" {
  description = "Location of the tenant datasets: EU, US or a region. Their KMS key ring follows it (EU -> europe, US -> us)."
  type        = string
  default     = "EU"

  validation {
    condition     = contains(["EU", "US"], var.bigquery_location) || can(regex("^[a-z]+-[a-z]+[0-9]+$", var.bigquery_location))
    error_message = "bigquery_location is EU, US or a region such as europe-west1 (https://cloud.google.com/bigquery/docs/locations)."
  }
}

variable "tenant_configs_dir" {
  description = "The tenant_configs/ folder; every sub-folder with a tenant.yaml becomes a tenant module instance."
  type        = string
  default     = null
}

variable "source_object" {
  description = "Source bundle object in the source bucket (Cloud Build sets source/<commit>.zip)."
  type        = string
  default     = "source/initial.zip"
}

variable "maintenance_schedule" {
  description = "Cron (UTC) of the watchdog tick."
  type        = string
  default     = "*/5 * * * *"
}

variable "max_instances" {
  description = "Upper bound of instances per function."
  type        = number
  default     = 20
}

variable "api_public" {
  description = "Let anyone reach the api function (requests are still authenticated by X-API-Key)."
  type        = bool
  default     = true
}

variable "api_invokers" {
  description = "With api_public = false: members that may invoke the api function (e.g. the deployer account, for the smoke test)."
  type        = list(string)
  default     = []
}

variable "admin_token_sealed" {
  description = "The admin token sealed with the tenant-secrets key (`cloudact tenants seal-admin-token`); \"\" = admin routes answer 503."
  type        = string
  default     = ""
  sensitive   = true
}

variable "deletion_protection" {
  description = "Protect Firestore, the source bucket and tenant data from destroy."
  type        = bool
  default     = true
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channel ids every alert goes to (modules/platform/monitoring.tf)."
  type        = list(string)
  default     = []
}
