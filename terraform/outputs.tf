output "api_url" {
  description = "Base URL of the HTTP API (POST /api/v1/tenants/{tenant}/pipelines/execute ...)."
  value       = module.platform.api_url
}

output "function_urls" {
  value = module.platform.function_urls
}

output "source_bucket" {
  description = "Where Cloud Build uploads source bundles."
  value       = module.platform.source_bucket
}

output "kms_secrets_key_id" {
  description = "CLOUDACT_KMS_KEY of the functions."
  value       = module.platform.kms_secrets_key_id
}

output "function_timeouts" {
  description = "Seconds: api timeout, event function timeout, push ack deadline (README \"Timeouts\")."
  value       = module.platform.function_timeouts
}

output "function_service_accounts" {
  description = "Function => the service account it runs as."
  value       = module.platform.function_service_accounts
}

output "tenants" {
  description = "Tenant => its datasets, Scheduler jobs, service account and the buckets that account may read."
  value = {
    for t, m in module.tenant : t => {
      datasets        = m.datasets
      scheduler_jobs  = m.scheduler_jobs
      service_account = m.service_account
      gcs_buckets     = m.gcs_buckets
    }
  }
}
