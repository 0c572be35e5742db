# Alert policies, the uptime check and the dashboard. Metrics are GCP's own (Pub/Sub subscriptions; Cloud Run, which
# runs every gen2 function as a service of the same name; uptime checks), the code's OpenTelemetry metrics
# (workload.googleapis.com/cdp.*, shared/observability/metrics.py) and the log-based metrics of log_metrics.tf.
# Every alert goes to var.notification_channels and points at the runbook section that says what to do.

locals {
  runbook = "docs/runbook.md in the repository"

  # Event functions legitimately run long (a stage may take the whole timeout): alert when p95 nears that timeout.
  latency_threshold_ms = {
    for key, f in module.contract.functions : key => (
      f.trigger == "http" ? var.api_latency_p95_ms : floor(var.function_timeout_seconds * 1000 * 0.8)
    )
  }

  # Each tenant folder's plan (tenant.yaml `plan`; the code's default is starter) -> its daily BigQuery byte budget.
  tenant_plans = {
    for t in module.contract.tenant_ids : t => try(yamldecode(file("${var.tenant_configs_dir}/${t}/tenant.yaml")).plan, "starter")
  }
  tenant_bigquery_budgets = { for t, plan in local.tenant_plans : t => var.bigquery_bytes_per_day_by_plan[plan] }

  log_metric_alerts = {
    runs_timed_out = {
      metric    = google_logging_metric.runs_timed_out.name
      title     = "runs timed out"
      severity  = "ERROR"
      condition = "the watchdog timed a run out"
      threshold = 0
      window    = "300s"
      doc       = "A run passed its deadline and was ended TIMED_OUT. Find it with `cloudact runs list --status TIMED_OUT` or the log line's jsonPayload.run_id. See \"Recover a stuck run\" in ${local.runbook}."
    }
    runs_stuck = {
      metric    = google_logging_metric.watchdog_interventions.name
      title     = "runs stuck"
      severity  = "WARNING"
      condition = "more than ${var.stuck_run_interventions} watchdog interventions in 30 min"
      threshold = var.stuck_run_interventions
      window    = "1800s"
      doc       = "The watchdog keeps re-dispatching stages or re-publishing run requests: workers die or messages are lost. See \"Recover a stuck run\" in ${local.runbook}."
    }
    notification_failures = {
      metric    = google_logging_metric.notification_failures.name
      title     = "notifications not delivered"
      severity  = "WARNING"
      condition = "a notification failed for good"
      threshold = 0
      window    = "300s"
      doc       = "A Slack/email notification (or an operator alert) gave up. `cloudact notifications list` shows which and why (a revoked webhook secret, SMTP refusing). See \"Notifications are not delivered\" in ${local.runbook}."
    }
  }

  api_requests = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${module.contract.functions["api"].name}\" AND metric.type=\"run.googleapis.com/request_count\""
}

resource "google_monitoring_alert_policy" "dead_letter_backlog" {
  project               = var.project_id
  display_name          = "cdp: dead letters waiting"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "messages in ${module.contract.dead_letter_pull_subscription} for ${var.dead_letter_backlog_minutes} min"
    condition_threshold {
      filter          = "resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${google_pubsub_subscription.dead_letter_inspect.name}\" AND metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "${var.dead_letter_backlog_minutes * 60}s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A message failed every delivery and was dead-lettered. `cloudact dead-letters list` shows why and for which run/stage; fix the cause, then `cloudact dead-letters replay`. See \"Replay dead letters\" in ${local.runbook}."
  }
  alert_strategy {
    auto_close = "1800s"
  }
}

resource "google_monitoring_alert_policy" "oldest_unacked" {
  for_each              = module.contract.push_subscriptions
  project               = var.project_id
  display_name          = "cdp: ${each.key} is falling behind"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels

  conditions {
    display_name = "oldest unacked message older than ${var.oldest_unacked_age_seconds} s"
    condition_threshold {
      filter          = "resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${google_pubsub_subscription.push[each.key].name}\" AND metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.oldest_unacked_age_seconds
      duration        = "300s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "${each.value.function} is not keeping up with ${each.value.topic}, or keeps nacking the same messages. Check its error rate and logs. See \"A queue is falling behind\" in ${local.runbook}."
  }
  alert_strategy {
    auto_close = "1800s"
  }
}

resource "google_monitoring_alert_policy" "function_errors" {
  for_each              = module.contract.functions
  project               = var.project_id
  display_name          = "cdp: ${each.value.name} 5xx rate"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "5xx share above ${var.function_error_ratio} for 10 min"
    condition_threshold {
      filter             = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${each.value.name}\" AND metric.type=\"run.googleapis.com/request_count\" AND metric.labels.response_code_class=\"5xx\""
      denominator_filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${each.value.name}\" AND metric.type=\"run.googleapis.com/request_count\""
      comparison         = "COMPARISON_GT"
      threshold_value    = var.function_error_ratio
      duration           = "600s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.labels.service_name"]
      }
      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.labels.service_name"]
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "${each.value.name} answers 5xx (for an event function: nacks, so Pub/Sub redelivers). Read its ERROR lines in Cloud Logging (jsonPayload.logger=\"shared.app.delivery\" for event functions, \"shared.api.http\" for the API). See \"A function's error rate climbs\" in ${local.runbook}."
  }
  alert_strategy {
    auto_close = "1800s"
  }
}

resource "google_monitoring_alert_policy" "function_latency" {
  for_each              = module.contract.functions
  project               = var.project_id
  display_name          = "cdp: ${each.value.name} p95 latency"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels

  conditions {
    display_name = "p95 latency above ${local.latency_threshold_ms[each.key]} ms for 10 min"
    condition_threshold {
      filter          = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${each.value.name}\" AND metric.type=\"run.googleapis.com/request_latencies\""
      comparison      = "COMPARISON_GT"
      threshold_value = local.latency_threshold_ms[each.key]
      duration        = "600s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_PERCENTILE_95"
        cross_series_reducer = "REDUCE_MAX"
        group_by_fields      = ["resource.labels.service_name"]
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "${each.value.name} is slow. For the api: admission contention or a slow state store; for stage_worker: steps close to their timeout. See \"A function's error rate climbs\" in ${local.runbook}."
  }
  alert_strategy {
    auto_close = "1800s"
  }
}

# Alerts on the log-based counters of log_metrics.tf: a sum over a window above a threshold.
resource "google_monitoring_alert_policy" "log_metric" {
  for_each              = local.log_metric_alerts
  project               = var.project_id
  display_name          = "cdp: ${each.value.title}"
  combiner              = "OR"
  severity              = each.value.severity
  notification_channels = var.notification_channels

  conditions {
    display_name = each.value.condition
    condition_threshold {
      filter          = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${each.value.metric}\""
      comparison      = "COMPARISON_GT"
      threshold_value = each.value.threshold
      duration        = "0s"
      aggregations {
        alignment_period     = each.value.window
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = each.value.doc
  }
  alert_strategy {
    auto_close = "3600s"
  }
}

resource "google_monitoring_alert_policy" "admission_throttled" {
  project               = var.project_id
  display_name          = "cdp: api refusing with 429"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels

  conditions {
    display_name = "more than ${var.admission_throttled_per_minute} 429/min for 10 min"
    condition_threshold {
      filter          = "${local.api_requests} AND metric.labels.response_code=\"429\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.admission_throttled_per_minute / 60
      duration        = "600s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Tenants hit their plan's rate or run quotas (TOO_MANY_REQUESTS), the global limit CLOUDACT_GLOBAL_REQUESTS_PER_MINUTE, or Cloud Run hit max_instances. See TOO_MANY_REQUESTS in docs/troubleshooting.md."
  }
  alert_strategy {
    auto_close = "1800s"
  }
}

resource "google_monitoring_alert_policy" "admission_unavailable" {
  project               = var.project_id
  display_name          = "cdp: api answering 503"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "503 share above ${var.api_unavailable_ratio} for 5 min"
    condition_threshold {
      filter             = "${local.api_requests} AND metric.labels.response_code=\"503\""
      denominator_filter = local.api_requests
      comparison         = "COMPARISON_GT"
      threshold_value    = var.api_unavailable_ratio
      duration           = "300s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
      denominator_aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "UNAVAILABLE: admission contention past 4 s, a failed enqueue, or admin routes without CLOUDACT_ADMIN_TOKEN. See UNAVAILABLE in docs/troubleshooting.md."
  }
  alert_strategy {
    auto_close = "1800s"
  }
}

# One policy per tenant: its threshold is its own plan's budget. PromQL, because a distribution's sum over a day is
# what is compared (Cloud Monitoring exposes distributions to PromQL as _sum/_count/_bucket).
resource "google_monitoring_alert_policy" "tenant_bigquery_bytes" {
  for_each              = local.tenant_bigquery_budgets
  project               = var.project_id
  display_name          = "cdp: ${each.key} BigQuery bytes over its ${local.tenant_plans[each.key]} budget"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels

  conditions {
    display_name = "bytes billed in 24 h above ${each.value}"
    condition_prometheus_query_language {
      query               = "sum(increase(logging_googleapis_com:user_${google_logging_metric.tenant_bigquery_bytes.name}_sum{tenant=\"${each.key}\"}[1d])) > ${each.value}"
      duration            = "0s"
      evaluation_interval = "300s"
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Tenant ${each.key} was billed more BigQuery bytes in 24 h than its plan's budget (var.bigquery_bytes_per_day_by_plan). Look at its runs' steps (`cloudact runs list --tenant ${each.key}`), then talk to the tenant or change its plan."
  }
  alert_strategy {
    auto_close = "86400s"
  }
}

# The api's health route from Google's uptime checkers. Only when the api is public: behind IAM it would answer 403.
resource "google_monitoring_uptime_check_config" "api_health" {
  count        = var.api_public ? 1 : 0
  project      = var.project_id
  display_name = "cdp api health"
  timeout      = "10s"
  period       = "60s"

  http_check {
    path           = "/api/v1/health"
    port           = 443
    use_ssl        = true
    validate_ssl   = true
    request_method = "GET"
    accepted_response_status_codes {
      status_class = "STATUS_CLASS_2XX"
    }
  }

  content_matchers {
    content = "\"status\": \"ok\""
    matcher = "CONTAINS_STRING"
  }

  monitored_resource {
    type = "uptime_url"
    labels = {
      project_id = var.project_id
      host       = trimsuffix(trimprefix(google_cloudfunctions2_function.fn["api"].service_config[0].uri, "https://"), "/")
    }
  }
}

resource "google_monitoring_alert_policy" "api_down" {
  count                 = var.api_public ? 1 : 0
  project               = var.project_id
  display_name          = "cdp: api health check failing"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = var.notification_channels

  conditions {
    display_name = "/api/v1/health fails from more than one region"
    condition_threshold {
      filter          = "resource.type=\"uptime_url\" AND metric.type=\"monitoring.googleapis.com/uptime_check/check_passed\" AND metric.labels.check_id=\"${google_monitoring_uptime_check_config.api_health[0].uptime_check_id}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 1
      duration        = "300s"
      aggregations {
        alignment_period     = "1200s"
        per_series_aligner   = "ALIGN_NEXT_OLDER"
        cross_series_reducer = "REDUCE_COUNT_FALSE"
        group_by_fields      = ["resource.labels.host"]
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The api does not answer its health route. Check the last deploy (roll back: \"Roll back\" in ${local.runbook}) and the cdp-api service's logs."
  }
  alert_strategy {
    auto_close = "1800s"
  }
}

resource "google_monitoring_dashboard" "cdp" {
  project        = var.project_id
  dashboard_json = file("${path.module}/dashboard.json")

  # The dashboard's charts name the log-based metrics: create them first.
  depends_on = [
    google_logging_metric.runs_finished,
    google_logging_metric.runs_timed_out,
    google_logging_metric.watchdog_interventions,
    google_logging_metric.notification_failures,
    google_logging_metric.tenant_bigquery_bytes,
  ]
}
