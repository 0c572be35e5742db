output "topics" {
  description = "Every Pub/Sub topic the code publishes to or consumes."
  value       = local.topics
}

output "job_events" {
  description = "The topic BigQuery job-completion audit entries are routed to, and how the sink knows our jobs."
  value       = local.job_events
}

output "dead_letter_topic" {
  value = local.dead_letter_topic
}

output "push_subscriptions" {
  description = "Push subscription name => {topic, function, dead_lettered}."
  value       = local.push_subscriptions
}

output "dead_letter_pull_subscription" {
  value = local.dead_letter_pull_subscription
}

output "functions" {
  description = "Function key (the entry point in main.py) => {name, entry_point, trigger, publishes}."
  value       = local.functions
}

output "limits" {
  description = "Function timeouts and the push ack deadline (seconds), and the service maxima they must stay within."
  value       = local.limits
}

output "maintenance_job" {
  value = local.maintenance_job
}

output "tenant_ids" {
  description = "Tenants found in tenant_configs/ (folders with a tenant.yaml)."
  value       = local.tenant_ids
}
