"""Warden: a multi-tenant operations API with tenant isolation enforced twice (app + PostgreSQL RLS)."""
