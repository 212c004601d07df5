"""Job names and what each needs: the contract between `app` (which enqueues) and `workers`
(which runs). `app` never imports `workers`; both sides read this module."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JobKind:
    name: str  # the arq function name, and the task's `kind`
    permission: str  # re-checked by the worker before the job touches data


IMPORT_SCAN = JobKind("scan.import", "scan.create")
DELETE_WORKSPACE = JobKind("workspace.delete", "workspace.delete")
# Notifications, written after the action's transaction committed, in the actor's name (each
# recipient's own membership, permission and visibility are checked again when it is written).
NOTIFY_CHANGE = JobKind("notify.change", "change.read")
NOTIFY_INCIDENT = JobKind("notify.incident", "incident.read")
NOTIFY_INVITATION = JobKind("notify.invitation", "member.read")

JOBS = {
    kind.name: kind
    for kind in (IMPORT_SCAN, DELETE_WORKSPACE, NOTIFY_CHANGE, NOTIFY_INCIDENT, NOTIFY_INVITATION)
}

# Cron jobs (no user, no workspace: they call narrow definer functions only).
CRON_SWEEP_OUTBOX = "cron.sweep_outbox"
CRON_PARTITIONS = "cron.maintain_partitions"
CRON_RETENTION = "cron.task_retention"
CRON_AUDIT_SEAL = "cron.audit_seal"
CRON_AUDIT_RETENTION = "cron.audit_retention"
CRON_TAKE_OVER = "cron.take_over_expired_tasks"
CRON_IDEMPOTENCY = "cron.prune_idempotency_keys"
CRON_FINISH_DELETIONS = "cron.finish_deletions"
