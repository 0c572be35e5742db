# Alerting knobs (monitoring.tf). Defaults are starting points for a small deployment; each says what it trades off.

variable "notification_channels" {
  description = "Cloud Monitoring notification channel ids (projects/<p>/notificationChannels/<id>) every alert goes to."
  type        = list(string)
  default     = []
}

variable "dead_letter_backlog_minutes" {
  description = "Minutes a message may wait in cdp-dead-letters--inspect before the dead-letter alert fires."
  type        = number
  default     = 10
}

variable "oldest_unacked_age_seconds" {
  description = "Age of a push subscription's oldest unacknowledged message that alerts. Retries back off up to 600 s and a stage may run 540 s, so keep it well above both."
  type        = number
  default     = 1800
}

variable "function_error_ratio" {
  description = "Share of a function's requests answered 5xx (an event function's nack is a 500) that alerts, over 10 minutes."
  type        = number
  default     = 0.1
}

variable "api_latency_p95_ms" {
  description = "p95 latency of the api function that alerts. Event functions alert at 80% of their timeout instead."
  type        = number
  default     = 3000
}

variable "stuck_run_interventions" {
  description = "Watchdog interventions (re-dispatches, re-published requests, released claims) in 30 minutes that mean runs are stuck."
  type        = number
  default     = 3
}

variable "admission_throttled_per_minute" {
  description = "429 answers of the api per minute, sustained 10 minutes, that alert (tenants hitting rate limits or quotas, or Cloud Run at max instances)."
  type        = number
  default     = 30
}

variable "api_unavailable_ratio" {
  description = "Share of api requests answered 503 (admission contention, enqueue failures, no admin credential) that alerts, over 5 minutes."
  type        = number
  default     = 0.02
}

variable "bigquery_bytes_per_day_by_plan" {
  description = "BigQuery bytes billed per tenant per day, by plan, above which the tenant's budget alert fires."
  type        = map(number)
  default = {
    free         = 10737418240    # 10 GiB
    starter      = 107374182400   # 100 GiB
    professional = 1099511627776  # 1 TiB
    enterprise   = 10995116277760 # 10 TiB
  }
}
