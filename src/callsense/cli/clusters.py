"""`callsense clusters`: stored segment embeddings grouped by k-means, and outliers against a reference set.

``run`` clusters (k given, or chosen by silhouette) and stores the assignment; ``show [RUN]`` prints each
cluster's size, dominant emotions, agents and example segments (``--cluster N``: its members);
``outliers --reference FIELD=VALUE`` scores segments against a reference set (e.g. an agent's or a queue's
normal speech) and stores the scores; ``flagged [RUN]`` lists the flagged segments, highest score first.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from callsense.cli.options import DB_HELP, DB_METAVAR

clusters_app = typer.Typer(help="Clusters of stored segment embeddings, and outlier segments (docs/store.md).",
                           no_args_is_help=True)

WHERE_HELP = "Only calls with FIELD=VALUE (agent_id, queue, category, team, customer_id); repeatable."


def register(app: typer.Typer) -> None:
    app.add_typer(clusters_app, name="clusters")


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


def _selection(role: str | None, where: list[str], since: str | None, until: str | None, limit: int) -> Any:
    from callsense.errors import UsageError
    from callsense.labels import ROLES
    from callsense.store.clusters import Selection, parse_where

    if role is not None and role not in ROLES:
        raise UsageError(f"--role must be one of {', '.join(ROLES)}, not {role!r}")
    if limit < 1:
        raise UsageError(f"--limit must be at least 1, not {limit}")
    return Selection(role=role, where=parse_where(where), since=since, until=until, limit=limit)


def _open(db: str | None) -> Any:
    from callsense.store.db import open_store

    return open_store(db)


def _emit(doc: dict[str, Any], as_json: bool, show: Any) -> None:
    """One JSON document with ``--json``, else the Rich tables ``show`` prints."""
    if as_json:
        typer.echo(json.dumps(doc, ensure_ascii=False, indent=2))
    else:
        show()


def _share(items: list[dict[str, Any]]) -> str:
    return ", ".join(f"{i['value']} {i['share']:.0%}" for i in items) or "-"


def print_clusters(doc: dict[str, Any], *, members: bool = False) -> None:
    from rich.table import Table

    c = _console()
    sil = doc.get("silhouette")
    c.print(f"[bold]clusters run {doc['run']}[/]: {doc['segments']} segments, k={doc['k']} "
            f"({doc['criterion']}{f', silhouette {sil:.3f}' if sil is not None else ''}), {doc['algorithm']}")
    t = Table()
    for col in ("cluster", "size", "calls", "emotions", "agents", "examples (nearest the centre)"):
        t.add_column(col)
    for cl in doc["clusters"]:
        ex = "\n".join(f"{e['call_id']}/{e['segment_id']} {e['role']} {e['emotion'] or '-'}: {e['text'][:40]}"
                       for e in cl["examples"])
        t.add_row(str(cl["cluster"]), str(cl["size"]), str(cl["calls"]), _share(cl["emotions"]),
                  _share(cl["agents"]), ex)
    c.print(t)
    if members:
        for cl in doc["clusters"]:
            for m in cl.get("members", []):
                c.print(f"{cl['cluster']}\t{m['call_id']}\t{m['segment_id']}\t{m['score']:.4f}\t{m['text'][:60]}")


@clusters_app.command("run")
def run_cmd(
    k: int | None = typer.Option(None, "--k", metavar="K", help="Number of clusters (default: chosen by silhouette)."),
    k_min: int = typer.Option(2, "--k-min", metavar="K", help="Smallest k tried."),
    k_max: int = typer.Option(8, "--k-max", metavar="K", help="Largest k tried."),
    role: str | None = typer.Option(None, "--role", metavar="ROLE", help="Only segments of this role."),
    where: list[str] = typer.Option([], "--where", metavar="FIELD=VALUE", help=WHERE_HELP),
    since: str | None = typer.Option(None, "--since", help="Call time ≥ (ISO 8601)."),
    until: str | None = typer.Option(None, "--until", help="Call time < (ISO 8601)."),
    limit: int = typer.Option(200_000, "--limit", metavar="N", help="At most N segments."),
    db: str | None = typer.Option(None, "--db", metavar=DB_METAVAR, help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="One JSON document."),
) -> None:
    """Cluster stored segment embeddings (k-means) and store each segment's cluster."""
    from callsense.store.clusters import cluster_report, run_clusters

    sel = _selection(role, where, since, until, limit)
    with _open(db) as store:
        run = run_clusters(store, sel, k=k, k_min=k_min, k_max=k_max)
        doc = cluster_report(store, run)
    _emit(doc, as_json, lambda: print_clusters(doc))


@clusters_app.command("show")
def show_cmd(
    run: int | None = typer.Argument(None, metavar="[RUN]", help="Run id (default: the latest)."),
    cluster: int | None = typer.Option(None, "--cluster", metavar="N", help="Only this cluster, with its members."),
    examples: int = typer.Option(3, "--examples", metavar="N", help="Example segments per cluster."),
    db: str | None = typer.Option(None, "--db", metavar=DB_METAVAR, help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="One JSON document."),
) -> None:
    """A stored clusters run: size, dominant emotions, agents and examples per cluster."""
    from callsense.store.clusters import cluster_report

    with _open(db) as store:
        doc = cluster_report(store, run, examples=examples, cluster=cluster)
    _emit(doc, as_json, lambda: print_clusters(doc, members=cluster is not None))


def print_outliers(doc: dict[str, Any]) -> None:
    from rich.table import Table

    c = _console()
    c.print(f"[bold]outliers run {doc['run']}[/]: {doc['segments']} segments against {doc['reference_segments']} "
            f"reference segments; threshold {doc['threshold']:.4f}; {doc['flagged']} flagged")
    t = Table()
    for col in ("score", "call", "segment", "role", "emotion", "agent", "text"):
        t.add_column(col)
    for r in doc["segments_flagged"]:
        t.add_row(f"{r['score']:.4f}" + ("" if r["flagged"] else " (not flagged)"), r["call_id"], r["segment_id"],
                  r["role"], r["emotion"] or "-", r["agent_id"] or "-", r["text"][:50])
    c.print(t)


@clusters_app.command("outliers")
def outliers_cmd(
    reference: list[str] = typer.Option(..., "--reference", metavar="FIELD=VALUE",
                                        help="The reference set: calls with FIELD=VALUE (e.g. agent_id=a17); repeatable."),
    reference_role: str | None = typer.Option(None, "--reference-role", metavar="ROLE",
                                              help="Reference segments of this role (default: --role)."),
    role: str | None = typer.Option(None, "--role", metavar="ROLE", help="Only score segments of this role."),
    where: list[str] = typer.Option([], "--where", metavar="FIELD=VALUE", help=WHERE_HELP),
    since: str | None = typer.Option(None, "--since", help="Call time ≥ (ISO 8601)."),
    until: str | None = typer.Option(None, "--until", help="Call time < (ISO 8601)."),
    neighbours: int = typer.Option(5, "--neighbours", metavar="N", help="Nearest reference segments averaged."),
    quantile: float = typer.Option(0.95, "--quantile", metavar="Q",
                                   help="Flag over this quantile of the reference's own scores."),
    top: int = typer.Option(20, "--top", metavar="N", help="Flagged segments printed."),
    limit: int = typer.Option(200_000, "--limit", metavar="N", help="At most N segments on each side."),
    db: str | None = typer.Option(None, "--db", metavar=DB_METAVAR, help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="One JSON document."),
) -> None:
    """Score segments against a reference set's normal speech and store the scores; print the flagged."""
    from callsense.errors import UsageError
    from callsense.store.clusters import outlier_report, run_outliers

    if neighbours < 1:
        raise UsageError(f"--neighbours must be at least 1, not {neighbours}")
    sel = _selection(role, where, since, until, limit)
    ref = _selection(reference_role or role, reference, None, None, limit)
    with _open(db) as store:
        run = run_outliers(store, sel, ref, neighbours=neighbours, quantile=quantile)
        doc = outlier_report(store, run, top=top)
    _emit(doc, as_json, lambda: print_outliers(doc))


@clusters_app.command("flagged")
def flagged_cmd(
    run: int | None = typer.Argument(None, metavar="[RUN]", help="Outliers run id (default: the latest)."),
    all_rows: bool = typer.Option(False, "--all", help="Every scored segment, not only the flagged."),
    top: int = typer.Option(50, "--top", metavar="N", help="At most N segments."),
    db: str | None = typer.Option(None, "--db", metavar=DB_METAVAR, help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="One JSON document."),
) -> None:
    """The segments a stored outliers run flagged, highest score first."""
    from callsense.store.clusters import outlier_report

    with _open(db) as store:
        doc = outlier_report(store, run, top=top, all_rows=all_rows)
    _emit(doc, as_json, lambda: print_outliers(doc))
