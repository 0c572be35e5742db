output "datasets" {
  description = "BigQuery dataset ids the tenant needs."
  value       = local.datasets
}

output "scheduler_jobs" {
  description = "Pipeline id => the Cloud Scheduler job that ticks it."
  value       = local.scheduler_jobs
}
