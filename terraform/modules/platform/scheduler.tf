# The maintenance tick: the watchdog (stuck runs, orphaned claims, lost requests, dead-letter backlog) every few
# minutes. Pipeline schedules are in the tenant module, one job per scheduled pipeline.

resource "google_cloud_scheduler_job" "maintenance" {
  project     = var.project_id
  region      = var.region
  name        = module.contract.maintenance_job.name
  description = "cdp watchdog tick -> maintenance function"
  schedule    = module.contract.maintenance_job.schedule
  time_zone   = "Etc/UTC"

  pubsub_target {
    topic_name = google_pubsub_topic.topic[module.contract.maintenance_job.topic].id
    data       = base64encode(module.contract.maintenance_job.data)
    attributes = { kind = "maintenance.tick" }
  }

  retry_config {
    retry_count = 1
  }

  # Scheduler publishes as its service agent: it must exist first (main.tf).
  depends_on = [google_project_service.apis, google_project_service_identity.cloudscheduler]
}
