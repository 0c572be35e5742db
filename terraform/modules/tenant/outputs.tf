output "datasets" {
  value = [for d in google_bigquery_dataset.tenant : d.dataset_id]
}

output "scheduler_jobs" {
  description = "Pipeline id => Scheduler job name."
  value       = { for id, j in google_cloud_scheduler_job.pipeline : id => j.name }
}
