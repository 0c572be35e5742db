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
  value = google_pubsub_topic.topic["cdp-schedule-ticks"].id
}

output "subscriptions" {
  value = concat([for s in google_pubsub_subscription.push : s.name], [google_pubsub_subscription.dead_letter_inspect.name])
}

output "kms_secrets_key_id" {
  value = google_kms_crypto_key.secrets.id
}

output "kms_bigquery_key_id" {
  value = google_kms_crypto_key.bigquery.id
}

output "source_bucket" {
  value = google_storage_bucket.source.name
}

output "tenant_ids" {
  description = "Tenants found in tenant_configs/."
  value       = module.contract.tenant_ids
}
