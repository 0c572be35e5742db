# BigQuery job-completion events: the audit log entry BigQuery writes when one of our jobs ends is routed to
# cdp-job-events, whose push subscription (pubsub.tf, like every other: OIDC, retry 10-600 s, dead-letter policy)
# wakes the stage_worker, which starts that stage's next poll round at once (shared/runs/job_events.py). The re-check
# chain (shared/runs/stage_jobs.py) stays: an entry that is late, lost or cut (audit entries over 100 KB are
# truncated) costs latency, never correctness, and the emulators, which write no audit log, rely on the chain alone.
#
# The entries are BigQueryAuditMetadata `jobChange` records with `after = DONE` on the `bigquery_project` resource:
# https://cloud.google.com/bigquery/docs/reference/auditlogs (message formats),
# https://cloud.google.com/bigquery/docs/reference/auditlogs/rest/Shared.Types/BigQueryAuditMetadata (JobChange, Job).
# BigQuery's Data Access audit logs, where these entries are, are on by default (unlike other services'): nothing to
# enable.
# Only jobs the code starts pass the filter: the label app=cdp every job carries, and a job id `cdp_..._<attempt>`
# (a stage's job, shared/processors/jobs.py `stage_job_id`; the statement jobs of a step end in a hash instead). The
# handler still checks every entry against the stage document: the filter saves invocations, it is not the guard.
#
# google provider docs (hashicorp/terraform-provider-google): website/docs/r/logging_project_sink,
# website/docs/r/pubsub_topic_iam (writer identity grant). https://cloud.google.com/logging/docs/export/configure_export_v2

locals {
  job_events       = module.contract.job_events
  job_events_topic = google_pubsub_topic.topic[local.job_events.topic]
  job_events_filter = join(" AND ", [
    "resource.type=\"bigquery_project\"",
    "protoPayload.serviceName=\"bigquery.googleapis.com\"",
    "protoPayload.metadata.\"@type\"=\"type.googleapis.com/google.cloud.audit.BigQueryAuditMetadata\"",
    "protoPayload.metadata.jobChange.after=\"DONE\"",
    "protoPayload.metadata.jobChange.job.jobConfig.labels.${local.job_events.label_key}=\"${local.job_events.label_value}\"",
    "protoPayload.metadata.jobChange.job.jobName=~\"^projects/${var.project_id}/jobs/${local.job_events.job_id_prefix}[A-Za-z0-9_-]+_[0-9]+$\"",
  ])
}

resource "google_logging_project_sink" "job_events" {
  project     = var.project_id
  name        = "cdp-bigquery-job-events"
  description = "BigQuery completions of cdp's stage jobs -> ${local.job_events.topic} -> stage_worker (next poll round now)."
  destination = "pubsub.googleapis.com/${local.job_events_topic.id}"
  filter      = local.job_events_filter
  # The sink writes as its own service agent, granted publisher on this one topic below (not a project role).
  unique_writer_identity = true

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic_iam_member" "job_events_writer" {
  project = var.project_id
  topic   = local.job_events_topic.name
  role    = "roles/pubsub.publisher"
  member  = google_logging_project_sink.job_events.writer_identity
}
