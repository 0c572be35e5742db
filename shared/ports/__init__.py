"""Narrow interfaces to every external service. Each has a GCP adapter and an embedded adapter in shared/adapters/."""
