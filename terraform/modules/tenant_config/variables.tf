variable "tenant_id" {
  description = "The tenant's folder name in tenant_configs/."
  type        = string

  validation {
    # shared/tenancy/tenants.py TENANT_ID: also a valid BigQuery dataset prefix and service account name.
    condition     = can(regex("^[a-z][a-z0-9_]{2,49}$", var.tenant_id))
    error_message = "A tenant id is 3-50 characters of [a-z0-9_], starting with a letter."
  }
}

variable "tenant_configs_dir" {
  description = "The tenant_configs/ folder."
  type        = string
}
