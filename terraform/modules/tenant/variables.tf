variable "project_id" {
  type = string
}

variable "region" {
  description = "Region of the tenant's Scheduler jobs."
  type        = string
}

variable "tenant_id" {
  description = "The tenant's folder name in tenant_configs/."
  type        = string
}

variable "tenant_configs_dir" {
  type = string
}

variable "bigquery_location" {
  type = string
}

variable "bigquery_kms_key_id" {
  description = "KMS key the tenant's datasets are encrypted with by default."
  type        = string
}

variable "schedule_ticks_topic_id" {
  description = "Topic the pipeline Scheduler jobs publish to (cdp-schedule-ticks)."
  type        = string
}

variable "function_service_accounts" {
  description = "Function key => service account email (from the platform module)."
  type        = map(string)
}

variable "deletion_protection" {
  description = "Keep dataset contents when the tenant is removed from tenant_configs/ (never delete data by accident)."
  type        = bool
  default     = true
}
