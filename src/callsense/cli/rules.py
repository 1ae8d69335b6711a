"""`callsense rules ...`: check rule files, re-run rules on stored results, list a rule set.

    callsense rules check RULES.yaml [--scorecard CARD.yaml]   # exit 2 with file:line:column problems
    callsense rules run RULES.yaml result.json...              # hits with evidence, no models needed
    callsense rules run RULES.yaml --call ID [--db URL]        # a stored call, with the store's history and
                                                               # outlier scores (history / outlier conditions)
    callsense rules list [RULES.yaml]                          # the default pack when none is given

``default`` in place of RULES.yaml means the shipped default pack.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from callsense.cli.options import DB_HELP, DB_METAVAR

rules_app = typer.Typer(help="Check, list and run QA rule files (docs/rules.md).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(rules_app, name="rules")


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _ruleset(path: str):
    from callsense.rules import default_ruleset, load_ruleset

    return default_ruleset() if path == "default" else load_ruleset(path)


@rules_app.command("check")
def check(
    files: list[Path] = typer.Argument(..., help="Rule files (and scorecards) to validate."),
    scorecard: Path | None = typer.Option(None, "--scorecard", help="Also validate this scorecard against the rules."),
) -> None:
    """Validate rule files; print every problem as file:line:column: message (hint). Exit 2 on problems."""
    from callsense.errors import RuleError
    from callsense.rules.loader import (
        RuleFileError,
        is_scorecard_text,
        load_ruleset,
        load_scorecard,
    )

    err = _console(stderr=True)
    out = _console()
    bad = False
    loaded = []
    for path in [*files, *([scorecard] if scorecard else [])]:
        try:
            text = path.read_text(encoding="utf-8") if path.is_file() else ""
            if path == scorecard or is_scorecard_text(text):
                card = load_scorecard(path)
                n = sum(len(s.items) for s in card.scorecard.sections)
                out.print(f"{path}: ok, scorecard {card.id} v{card.version}, {len(card.scorecard.sections)} "
                          f"sections, {n} items", markup=False)
                loaded.append(card)
            else:
                rs = load_ruleset(path)
                out.print(f"{path}: ok, {len(rs.rules)} rules ({rs.id} v{rs.version})", markup=False)
                loaded.append(rs)
        except RuleFileError as e:
            bad = True
            for problem in e.problems:
                err.print(str(problem), markup=False)
        except (RuleError, OSError, UnicodeDecodeError) as e:
            bad = True
            err.print(f"{path}: {getattr(e, 'message', e)}", markup=False)
    # scorecard items naming rules that no checked rule file defines would silently score N/A
    from callsense.rules.model import Ruleset, Scorecard

    rule_ids = {r.id for x in loaded if isinstance(x, Ruleset) for r in x.rules}
    for card in (x for x in loaded if isinstance(x, Scorecard)):
        if not rule_ids:
            continue
        for section in card.scorecard.sections:
            for item in section.items:
                for rid in item.rules:
                    if rid not in rule_ids:
                        bad = True
                        err.print(f"{card.source}: item {section.id}.{item.id} names rule {rid!r}, which none of "
                                  f"the rule files defines", markup=False)
    if bad:
        raise RuleError("rule files have problems (listed above)", hint="fix them and run `callsense rules check` again")


@rules_app.command("run")
def run(
    ctx: typer.Context,
    rules: str = typer.Argument(..., help="A rule file, or 'default' for the shipped pack."),
    results: list[Path] = typer.Argument(None, help="result.json files (or call folders) to re-evaluate."),
    calls: list[str] = typer.Option([], "--call", metavar="ID", help="A stored call to re-evaluate; repeatable."),
    db: str | None = typer.Option(None, "--db", metavar=DB_METAVAR,
                                  help=DB_HELP + " With --db or --call the rules see the store: earlier calls "
                                       "(history conditions) and outlier scores (outlier conditions)."),
    scorecard: Path | None = typer.Option(None, "--scorecard", help="Scorecard YAML (default: the shipped one)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout: an object with results "
                                                        "(call id, path, hits, score of each) and failures."),
) -> None:
    """Re-evaluate results with RULES, without re-running any model; print hits with evidence. Nothing is
    written, not even to the store."""
    from contextlib import nullcontext

    from callsense.errors import CallsenseError
    from callsense.result import read_result
    from callsense.result.model import to_jsonable
    from callsense.rules import apply_qa, load_scorecard

    results = list(results or [])
    if not results and not calls:
        raise typer.BadParameter("give result.json files, or --call ID", ctx=ctx, param_hint="'RESULTS...'")
    ruleset = _ruleset(rules)
    card = load_scorecard(scorecard) if scorecard else None
    out = _console()
    done: list[dict] = []
    failures: list[dict] = []
    items: list[tuple[str, Any]] = [(str(p), lambda p=p: read_result(p)) for p in results]
    with (_open_store(db) if db is not None or calls else nullcontext()) as store:
        if store is not None:
            from callsense.store.history import apply_store_rules
            from callsense.store.repo import get_result

            items += [(f"store:{cid}", lambda cid=cid: get_result(store, cid)) for cid in calls]
        for path, load in items:
            try:
                result = apply_qa(load(), ruleset=ruleset, scorecard=card)
                if store is not None:
                    result = apply_store_rules(store, result, ruleset, scorecard=card)
            except CallsenseError as e:  # one bad file does not stop the others
                failures.append({"path": path, "code": e.code, "reason": str(e)})
                _console(stderr=True).print(f"error: {e}", markup=False)
                continue
            if as_json:
                done.append({"call_id": result.call_id, "path": path, "hits": to_jsonable(result.rule_hits),
                             "score": to_jsonable(result.score)})
                continue
            _print_result(out, result, path)
    if as_json:
        sys.stdout.write(json.dumps({"results": done, "failures": failures}, ensure_ascii=False, indent=2) + "\n")
    if failures:
        from callsense.errors import InputError

        raise InputError(f"{len(failures)} of {len(items)} results could not be read (listed above)")


def _open_store(db: str | None) -> Any:
    from callsense.store.db import open_store

    return open_store(db)


def _print_result(out, result, path: str) -> None:
    from rich.markup import escape

    from callsense.cli.render import clock

    score = result.score
    verdict = ""
    if score is not None and not score.scored:
        verdict = f"  [yellow]not scored[/] ({escape(score.reason or '')})"
    elif score is not None:
        verdict = f"  score {score.normalized:.0f}/100 " + ("[green]PASS[/]" if score.passed else "[red]FAIL[/]")
        if score.auto_failed:
            verdict += f" (auto-fail: {escape(', '.join(score.auto_fail_rules))})"
    out.print(f"[bold]{escape(result.call_id)}[/] ({escape(str(path))}){verdict}  {len(result.rule_hits)} hit(s)")
    segs = {s.id: s for s in result.segments}
    for hit in result.rule_hits:
        colour = {"critical": "red", "warning": "yellow"}.get(hit.severity, "blue")
        out.print(f"  [{colour}]{hit.severity.upper():8}[/] {escape(hit.rule_id)} v{escape(hit.rule_version)}  "
                  f"{escape(hit.name)} [dim]({escape(hit.category)})[/]")
        for e in hit.evidence:
            seg = segs.get(e.segment_id or "")
            where = f"{e.segment_id} {seg.role}" if seg else "call"
            said = f' "{e.text}"' if e.text else (f' "{seg.text[:50]}"' if seg and seg.text else "")
            out.print(f"      {clock(e.start_ms)}-{clock(e.end_ms)} {escape(where)}{escape(said)}"
                      f"{'  [dim]' + escape(e.note) + '[/]' if e.note else ''}")


@rules_app.command("list")
def list_rules(
    rules: str = typer.Argument("default", help="A rule file; the shipped default pack when omitted."),
) -> None:
    """List the rules of a rule set: id, version, severity, category, name, conditions, expression."""
    from rich.markup import escape

    from callsense.rules.loader import pack_path

    rs = _ruleset(rules)
    out = _console()
    where = pack_path() if rules == "default" else rules
    out.print(f"[bold]{escape(rs.id)}[/] v{escape(rs.version)}  {len(rs.rules)} rules  [dim]{escape(where)}[/]")
    for r in rs.rules:
        colour = {"critical": "red", "warning": "yellow"}.get(r.consequence.severity, "blue")
        conds = ", ".join(f"{n}:{c.type}" for n, c in sorted(r.conditions.items()))
        flags = (" +alert" if r.consequence.alert else "") + ("" if r.enabled else " (disabled)")
        out.print(f"  {escape(r.id)} v{escape(r.version)}  [{colour}]{r.consequence.severity}[/]{flags}  "
                  f"{escape(r.category)}  {escape(r.name)}  [dim]\\[{escape(conds)}] {escape(r.expression or 'all')}[/]")
