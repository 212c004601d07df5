"""Warden: a multi-tenant operations API; tenant isolation enforced twice (app + PostgreSQL RLS)."""
