variable "tenant_configs_dir" {
  description = "The tenant_configs/ folder: one sub-folder per tenant with tenant.yaml and pipelines/*.yaml."
  type        = string
}

variable "maintenance_schedule" {
  description = "Cron (UTC) of the maintenance watchdog tick."
  type        = string
  default     = "*/5 * * * *"
}
