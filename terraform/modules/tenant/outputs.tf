output "datasets" {
  value = [for d in google_bigquery_dataset.tenant : d.dataset_id]
}

output "scheduler_jobs" {
  description = "Pipeline id => Scheduler job name."
  value       = { for id, j in google_cloud_scheduler_job.pipeline : id => j.name }
}

output "service_account" {
  description = "Email of the tenant's own service account (what its BigQuery jobs and GCS reads run as)."
  value       = google_service_account.tenant.email
}

output "gcs_buckets" {
  description = "Buckets the tenant's account may read (tenant.yaml sources.gcs_buckets)."
  value       = module.config.gcs_buckets
}
