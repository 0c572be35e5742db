variable "tenant_id" {
  description = "The tenant's folder name in tenant_configs/."
  type        = string
}

variable "tenant_configs_dir" {
  description = "The tenant_configs/ folder."
  type        = string
}
