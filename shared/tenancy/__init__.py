"""Tenants, plans, API keys, quotas, rate limits and admission."""
