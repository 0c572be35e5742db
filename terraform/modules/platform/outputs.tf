output "api_url" {
  description = "Base URL of the HTTP API."
  value       = google_cloudfunctions2_function.fn["api"].service_config[0].uri
}

output "function_urls" {
  value = { for k, f in google_cloudfunctions2_function.fn : k => f.service_config[0].uri }
}

output "function_service_accounts" {
  value = { for k, sa in google_service_account.fn : k => sa.email }
}

output "topic_ids" {
  value = { for k, t in google_pubsub_topic.topic : k => t.id }
}

output "schedule_ticks_topic_id" {
  description = "Topic of the tenants' Scheduler jobs; ready once Scheduler's service agent exists (main.tf)."
  value       = google_pubsub_topic.topic["cdp-schedule-ticks"].id
  depends_on  = [google_project_service_identity.cloudscheduler]
}

output "subscriptions" {
  value = concat([for s in google_pubsub_subscription.push : s.name], [google_pubsub_subscription.dead_letter_inspect.name])
}

output "kms_secrets_key_id" {
  value = google_kms_crypto_key.secrets.id
}

output "kms_bigquery_key_id" {
  description = "Default key of the tenant datasets, read from BigQuery's grant on it: datasets wait for the grant."
  value       = google_kms_crypto_key_iam_member.bigquery_agent.crypto_key_id
  depends_on  = [google_kms_crypto_key_iam_member.bigquery_agent]
}

output "function_timeouts" {
  description = "Seconds: the api's and the event functions' request timeouts and the push subscriptions' ack deadline."
  value = {
    http_function_timeout_seconds  = local.limits.http_function_timeout_seconds
    event_function_timeout_seconds = local.event_timeout_seconds
    push_ack_deadline_seconds      = local.push_ack_deadline_seconds
  }
}

output "build_service_account" {
  description = "The account Cloud Build builds the functions' containers as."
  value       = google_service_account.build.email
}

output "source_bucket" {
  value = google_storage_bucket.source.name
}

output "tenant_ids" {
  description = "Tenants found in tenant_configs/."
  value       = module.contract.tenant_ids
}
