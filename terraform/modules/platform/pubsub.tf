# Topics and one push subscription per (topic, function): retry with exponential backoff 10-600 s and, except on the
# dead-letter topic itself, a dead-letter policy to cdp-dead-letters. The dead-letter topic also has a pull
# subscription for operators to inspect what died.

resource "google_pubsub_topic" "topic" {
  for_each                   = toset(module.contract.topics)
  project                    = var.project_id
  name                       = each.value
  message_retention_duration = var.message_retention
  kms_key_name               = google_kms_crypto_key.pubsub.id
  labels                     = { app = "cdp" }

  # Messages are persisted only in the region of the functions and of the pubsub-messages key (kms.tf).
  # https://cloud.google.com/pubsub/docs/resource-location-restriction
  message_storage_policy {
    allowed_persistence_regions = [var.region]
  }

  # The agent must be able to use the key before a topic names it.
  depends_on = [google_project_service.apis, google_kms_crypto_key_iam_member.pubsub_agent]
}

resource "google_pubsub_subscription" "push" {
  for_each = module.contract.push_subscriptions
  project  = var.project_id
  name     = each.key
  topic    = google_pubsub_topic.topic[each.value.topic].id
  # How long Pub/Sub waits for the push request to answer before it counts as a failure and is retried: the
  # Pub/Sub maximum, 600 s (README "Timeouts"). The function's timeout must not exceed it, or a slow invocation is
  # redelivered while it still runs.
  # https://cloud.google.com/pubsub/docs/subscription-properties#ack_deadline
  ack_deadline_seconds       = local.push_ack_deadline_seconds
  message_retention_duration = var.message_retention
  labels                     = { app = "cdp", function = replace(each.value.function, "_", "-") }

  push_config {
    # The topic path in the URL lets functions-framework build the CloudEvent's source, as in the emulator stack.
    push_endpoint = "${google_cloudfunctions2_function.fn[each.value.function].service_config[0].uri}/projects/${var.project_id}/topics/${each.value.topic}"
    oidc_token {
      service_account_email = google_service_account.pusher.email
      audience              = google_cloudfunctions2_function.fn[each.value.function].service_config[0].uri
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dynamic "dead_letter_policy" {
    for_each = each.value.dead_lettered ? [1] : []
    content {
      dead_letter_topic     = google_pubsub_topic.topic[module.contract.dead_letter_topic].id
      max_delivery_attempts = var.max_delivery_attempts
    }
  }

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "dead_letter_inspect" {
  project                    = var.project_id
  name                       = module.contract.dead_letter_pull_subscription
  topic                      = google_pubsub_topic.topic[module.contract.dead_letter_topic].id
  ack_deadline_seconds       = 60
  message_retention_duration = var.message_retention
  labels                     = { app = "cdp" }

  expiration_policy {
    ttl = ""
  }
}

# Pub/Sub's own agent forwards dead letters: publisher on the dead-letter topic, subscriber on each source
# subscription. https://cloud.google.com/pubsub/docs/handling-failures#grant_forwarding_permissions
#
# It is NOT granted Token Creator on the push identity: Pub/Sub signs the OIDC token of a push request without it for
# every project that enabled Pub/Sub after April 8, 2021 (a fresh project), and a grant nothing uses is privilege to
# remove. A project that enabled Pub/Sub before then needs `roles/iam.serviceAccountTokenCreator` for the agent on
# cdp-pubsub-push by hand (README "First deploy").
# https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions, https://cloud.google.com/run/docs/tutorials/pubsub#integrating-pubsub
resource "google_pubsub_topic_iam_member" "dead_letter_forwarder" {
  project = var.project_id
  topic   = google_pubsub_topic.topic[module.contract.dead_letter_topic].name
  role    = "roles/pubsub.publisher"
  member  = google_project_service_identity.pubsub.member
}

resource "google_pubsub_subscription_iam_member" "dead_letter_source" {
  for_each     = { for name, s in module.contract.push_subscriptions : name => s if s.dead_lettered }
  project      = var.project_id
  subscription = google_pubsub_subscription.push[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = google_project_service_identity.pubsub.member
}
