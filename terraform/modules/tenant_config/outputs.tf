output "datasets" {
  description = "BigQuery dataset ids the tenant needs."
  value       = local.datasets
}

output "scheduler_jobs" {
  description = "Pipeline id => the Cloud Scheduler job that ticks it."
  value       = local.scheduler_jobs
}

output "service_account_id" {
  description = "Account id of the tenant's own service account (cdp-t-...), the identity its BigQuery jobs and GCS reads run as."
  value       = local.service_account_id
}

output "gcs_buckets" {
  description = "Cloud Storage buckets the tenant declares in tenant.yaml (sources.gcs_buckets)."
  value       = local.gcs_buckets
}
