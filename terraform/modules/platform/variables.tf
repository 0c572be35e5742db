variable "project_id" {
  description = "The GCP project everything is deployed into."
  type        = string
}

variable "region" {
  description = "Region of the functions, Scheduler jobs and KMS key ring (e.g. europe-west1)."
  type        = string
}

variable "firestore_location" {
  description = "Firestore location (e.g. eur3, nam5, europe-west1)."
  type        = string
}

variable "bigquery_location" {
  description = "BigQuery location of the tenant datasets (EU, US or a region)."
  type        = string
}

variable "tenant_configs_dir" {
  description = "The tenant_configs/ folder (read with fileset + yamldecode)."
  type        = string
}

variable "source_object" {
  description = "Object name of the source bundle (zip of the repository) in the source bucket; Cloud Build uploads it."
  type        = string
}

variable "maintenance_schedule" {
  description = "Cron (UTC) of the maintenance watchdog tick."
  type        = string
  default     = "*/5 * * * *"
}

variable "function_memory" {
  description = "Memory per function instance."
  type        = string
  default     = "512Mi"
}

variable "function_timeout_seconds" {
  description = "Request timeout of the event functions; null = the contract's 540 s (README \"Timeouts\"). At most the push ack deadline, 600 s."
  type        = number
  default     = null

  validation {
    condition     = var.function_timeout_seconds == null ? true : (var.function_timeout_seconds >= 1 && var.function_timeout_seconds <= 600)
    error_message = "function_timeout_seconds must be 1-600: Pub/Sub redelivers a push request still running after the ack deadline (600 s at most)."
  }
}

variable "max_instances" {
  description = "Upper bound of instances per function (caps cost and Firestore contention)."
  type        = number
  default     = 20
}

variable "max_delivery_attempts" {
  description = "Deliveries before a message goes to cdp-dead-letters (Pub/Sub allows 5-100)."
  type        = number
  default     = 10
}

variable "message_retention" {
  description = "How long subscriptions keep unacknowledged messages."
  type        = string
  default     = "604800s"
}

variable "api_public" {
  description = "Let anyone reach the api function (requests are still authenticated by X-API-Key)."
  type        = bool
  default     = true
}

variable "api_invokers" {
  description = "With api_public = false: members (e.g. serviceAccount:...) that may invoke the api function."
  type        = list(string)
  default     = []
}

variable "admin_token_sealed" {
  description = "CLOUDACT_ADMIN_TOKEN_SEALED of the api function (`cloudact tenants seal-admin-token`); \"\" = admin routes answer 503."
  type        = string
  default     = ""
  sensitive   = true
}

variable "trace_exporter" {
  description = "CLOUDACT_TRACE_EXPORTER of the functions: gcp (Cloud Trace) or none."
  type        = string
  default     = "gcp"
}

variable "metrics_exporter" {
  description = "CLOUDACT_METRICS_EXPORTER of the functions: gcp (Cloud Monitoring) or none."
  type        = string
  default     = "gcp"
}

variable "enable_apis" {
  description = "Enable the Google APIs the platform uses (turn off where a project factory already does)."
  type        = bool
  default     = true
}

variable "deletion_protection" {
  description = "Protect Firestore and the source bucket from `terraform destroy`."
  type        = bool
  default     = true
}
