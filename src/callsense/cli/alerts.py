"""`callsense alerts`: the alert outbox of the store — what was queued, delivered or given up — and a
delivery pass on demand (``--deliver``, for cron or after the service was down)."""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer

from callsense.cli.options import DB_HELP, DB_METAVAR


def register(app: typer.Typer) -> None:
    app.command("alerts")(alerts)


def alerts(
    call: Optional[str] = typer.Option(None, "--call", metavar="CALL_ID", help="Only this call's alerts."),
    status: Optional[str] = typer.Option(None, "--status", metavar="pending|delivered|failed",
                                         help="Only alerts in this state."),
    deliver: bool = typer.Option(False, "--deliver", help="First send what is due now (one attempt each)."),
    limit: int = typer.Option(100, "--limit", "-n", metavar="N", help="At most N messages, newest first."),
    db: Optional[str] = typer.Option(None, "--db", metavar=DB_METAVAR, help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help='Print one JSON document: {"delivery": ..., "alerts": [...]}.'),
) -> None:
    """Alerts of stored calls: one line per webhook message with its rules, target, state and attempts.

    Batch and serve queue each call's alerting hits with its result and deliver them afterwards,
    retrying with backoff; a re-analysed call never sends the same rule's alert for the same evidence
    twice. Webhook URLs (which carry their key) are never shown: a target is its name or format:host.
    """
    from rich.console import Console

    from callsense.store.db import open_store
    from callsense.store.outbox import deliver_pending, list_alerts

    store = open_store(db)
    try:
        report = deliver_pending(store) if deliver else None
        entries = list_alerts(store, call_id=call, status=status, limit=limit)  # type: ignore[arg-type]
    finally:
        store.close()
    if as_json:
        doc = {"delivery": None if report is None else {"sent": report.sent, "retrying": report.retrying,
                                                        "failed": report.failed},
               "alerts": [e.to_dict() for e in entries]}
        sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
        return
    console = Console(highlight=False, soft_wrap=True)
    if report is not None:
        console.print(f"delivery: {report.sent} sent, {report.retrying} to retry, {report.failed} given up")
    if not entries:
        console.print("no alerts")
        return
    from rich.table import Table

    t = Table()
    for col in ("queued (UTC)", "call", "rules", "target", "status", "attempts", "next / delivered", "last error"):
        t.add_column(col, overflow="fold")
    for e in entries:
        when = e.delivered_at or e.next_attempt_at
        t.add_row(e.created_at.strftime("%Y-%m-%d %H:%M:%S"), e.call_id, ", ".join(e.rule_ids), e.target, e.status,
                  f"{e.attempts}/{e.max_attempts}", when.strftime("%H:%M:%S") if when else "", e.last_error or "")
    console.print(t)
