# Log-based metrics: what GCP does not measure for us, counted from the functions' structured logs (shared/logs.py
# writes one JSON line per record to stderr; Cloud Run turns it into jsonPayload and takes `severity` from it) and,
# for BigQuery bytes, from BigQuery's own audit log. Every filter names a logger, message and field the code really
# writes: tests/unit/test_monitoring.py reads them from the source and fails when one is renamed.

locals {
  # Every line our functions log; narrowing to our loggers keeps Cloud Run's own request logs out.
  function_logs = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=~\"^cdp-\" AND jsonPayload.logger:\"shared.\""
}

# A run reached a terminal state and was finalised (shared/runs/finalize.py: "run %s in %s ms"), by status
# and tenant: the per-tenant usage of the dashboard. A tenant label is fine here (one series per active tenant and
# status) where the OpenTelemetry metrics deliberately have none.
resource "google_logging_metric" "runs_finished" {
  project = var.project_id
  name    = "cdp_runs_finished"
  filter  = "${local.function_logs} AND jsonPayload.logger=\"shared.runs.finalize\" AND severity=INFO AND jsonPayload.message=~\"^run [A-Z_]+ in \""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "cdp runs finished"
    labels {
      key         = "status"
      value_type  = "STRING"
      description = "SUCCEEDED, FAILED, TIMED_OUT or CANCELLED"
    }
    labels {
      key         = "tenant_id"
      value_type  = "STRING"
      description = "The run's tenant"
    }
  }
  label_extractors = {
    status    = "REGEXP_EXTRACT(jsonPayload.message, \"^run ([A-Z_]+) in \")"
    tenant_id = "EXTRACT(jsonPayload.tenant_id)"
  }
}

# The watchdog timed a run out (shared/runs/watchdog.py _time_out): the run passed its deadline.
resource "google_logging_metric" "runs_timed_out" {
  project = var.project_id
  name    = "cdp_runs_timed_out"
  filter  = "${local.function_logs} AND jsonPayload.logger=\"shared.runs.watchdog\" AND severity=ERROR AND jsonPayload.message=~\"^run passed its deadline \""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "cdp runs timed out by the watchdog"
  }
}

# The watchdog had to push a run along (shared/runs/watchdog.py): stages nobody works on re-dispatched, a QUEUED run's
# request re-published or given up, a claim whose attempt never started released. One now and then is the design
# working (a worker died); many in a row mean runs are stuck.
resource "google_logging_metric" "watchdog_interventions" {
  project = var.project_id
  name    = "cdp_watchdog_interventions"
  filter  = "${local.function_logs} AND jsonPayload.logger=\"shared.runs.watchdog\" AND severity>=WARNING AND (jsonPayload.message=~\"^re-dispatching [0-9]+ stage[(]s[)] nobody is working on: \" OR jsonPayload.message=~\"^run still QUEUED .* after creation: re-publishing its request\" OR jsonPayload.message=~\"^run never started: \" OR jsonPayload.message=~\"^attempt .* was claimed but never started: releasing the claim\")"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "cdp watchdog interventions (stuck runs)"
  }
}

# A notification that will not be delivered (shared/notify/delivery.py: attempts exhausted or a permanent error;
# shared/notify/__init__.py: an operator alert with no usable channel).
resource "google_logging_metric" "notification_failures" {
  project = var.project_id
  name    = "cdp_notification_failures"
  filter  = "${local.function_logs} AND (jsonPayload.logger=\"shared.notify.delivery\" OR jsonPayload.logger=\"shared.notify\") AND severity=ERROR AND (jsonPayload.message=~\"^notification [^ ]+ failed: \" OR jsonPayload.message=~\"^operator alert [^ ]+ not sent: \")"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "cdp notification delivery failures"
  }
}

# BigQuery bytes billed per tenant, from BigQuery's data-access audit log (always on): every job a tenant's step runs
# carries the label tenant=<id> (shared/adapters/bigquery_warehouse.py _job_labels) and runs as cdp-t-<tenant>.
resource "google_logging_metric" "tenant_bigquery_bytes" {
  project         = var.project_id
  name            = "cdp_tenant_bigquery_billed_bytes"
  filter          = "resource.type=\"bigquery_project\" AND logName=\"projects/${var.project_id}/logs/cloudaudit.googleapis.com%2Fdata_access\" AND protoPayload.metadata.jobChange.after=\"DONE\" AND protoPayload.metadata.jobChange.job.jobConfig.labels.app=\"cdp\" AND protoPayload.metadata.jobChange.job.jobConfig.labels.tenant:*"
  value_extractor = "EXTRACT(protoPayload.metadata.jobChange.job.jobStats.queryStats.totalBilledBytes)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "By"
    display_name = "cdp BigQuery bytes billed per tenant"
    labels {
      key         = "tenant"
      value_type  = "STRING"
      description = "The job's tenant label"
    }
  }
  label_extractors = {
    tenant = "EXTRACT(protoPayload.metadata.jobChange.job.jobConfig.labels.tenant)"
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 40
      growth_factor      = 2
      scale              = 1048576 # 1 MiB .. 2^40 MiB
    }
  }
}
