"""`python -m bench`: run scenarios, print one table, write the figures as JSON."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import cleanup, deploy
from bench.e2e import Goal
from bench.harness import Context, Result, ScenarioError, load1, machine, table
from bench.scenarios import E2E, SCENARIOS
from bench.sinks import tls

RESULTS = Path(__file__).parent / "results"
# A broadcast's delivery rate against `webpush_e2e`'s in the same run (issue 14).
BROADCAST_SEND_RATIO = 0.9


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--scenario", default="all", help=f"all or {', '.join(SCENARIOS)}")
    parser.add_argument("--profile", default="all", choices=("all", "services", "embedded"))
    parser.add_argument("--n", type=int, default=None, help="size (devices) for every scenario")
    parser.add_argument(
        "--broadcast-n", type=int, default=None, help="broadcast audience (target run: 1000000)"
    )
    parser.add_argument(
        "--broadcast-users",
        action="store_true",
        help="every broadcast device belongs to a user (each page planned: preferences read)",
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes (services)")
    parser.add_argument("--max-load", type=float, default=0.7, help="quiet machine: load1 below")
    parser.add_argument("--quiet-wait", type=float, default=600, help="seconds to wait for quiet")
    parser.add_argument("--timeout-factor", type=float, default=1.0)
    parser.add_argument("--py-spy", type=Path, default=None, help="record raw stacks into DIR")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    return parser.parse_args(argv)


def _judge(results: list[Result]) -> None:
    """Targets that compare rows: each end-to-end scenario against its rate and the fastest
    baseline row of its kind (pywebpush for Web Push, the requests loop for FCM), two workers
    vs one, embedded vs services. A wrong row meets nothing."""
    for r in results:
        spec = E2E.get(r.scenario)
        if spec is not None and r.profile == "services":
            _against_goal(r, spec.goal, results)
        elif r.profile == "embedded" and (spec is not None or r.scenario == "mixed_latency"):
            services = _figure(results, r.scenario, "services", r.params)
            r.target = ">= 50% services"
            if services:
                r.figures["x_services"] = round(r.figures[r.headline] / services, 2)
                r.met = r.figures[r.headline] / services >= 0.5
        if r.scenario == "broadcast" and r.profile == "services":
            _against_webpush(r, results)
        if not r.correct and r.met is not None:
            r.met = False


def _against_webpush(r: Result, results: list[Result]) -> None:
    """A broadcast's sends go no slower than a plain Web Push run's: with `webpush_e2e` (the
    same workers) in this run, its delivery rate is at least `BROADCAST_SEND_RATIO` of it."""
    rates = [
        e.figures["deliveries_per_s"]
        for e in results
        if e.scenario == "webpush_e2e"
        and e.profile == "services"
        and e.params.get("workers") == r.params["workers"]
    ]
    if not rates:
        return
    ratio = r.figures["deliveries_per_s"] / rates[0]
    r.figures["x_webpush_e2e"] = round(ratio, 2)
    r.target += f", deliveries >= {BROADCAST_SEND_RATIO:.0%} webpush_e2e"
    r.met = bool(r.met) and ratio >= BROADCAST_SEND_RATIO


def _against_goal(r: Result, goal: Goal, results: list[Result]) -> None:
    value = r.figures[r.headline]
    rates = [
        b.figures["deliveries_per_s"]
        for b in results
        if b.scenario == "baseline" and b.profile == goal.baseline
    ]
    ratio = value / max(rates) if rates else None
    if ratio is not None:
        r.figures["x_baseline"] = round(ratio, 2)
    if r.params["workers"] == 1:
        enough = goal.ratio is None or ratio is None or ratio >= goal.ratio
        r.met = value >= goal.rate and enough
        return
    one = _figure(results, r.scenario, "services", r.params | {"workers": 1})
    r.target = ">= 1.6x one worker"
    if one:
        r.figures["x_one_worker"] = round(value / one, 2)
        r.met = value / one >= 1.6


def _figure(
    results: list[Result], scenario: str, profile: str, params: dict[str, Any]
) -> float | None:
    for r in results:
        if (r.scenario, r.profile, r.params) == (scenario, profile, params):
            return r.figures[r.headline]
    return None


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    # Ctrl-C, SIGTERM (what `make` passes on when it is stopped) and SIGHUP stop the run and
    # undo what it started (processes, nginx, databases, queues): see bench/cleanup.py.
    return cleanup.run(lambda: _main(args, argv))


def _main(args: argparse.Namespace, argv: list[str] | None) -> int:
    names = list(SCENARIOS) if args.scenario == "all" else args.scenario.split(",")
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    profiles = ["services", "embedded"] if args.profile == "all" else [args.profile]
    missing = deploy.services_missing() if "services" in profiles else None
    if missing:
        print(f"services profile skipped: {missing}", file=sys.stderr)
        profiles.remove("services")
    workdir = Path(tempfile.mkdtemp(prefix="pushgate-bench-"))
    if not args.keep:  # registered first, so removed last, after what runs inside it
        cleanup.register("the work directory", lambda: shutil.rmtree(workdir, ignore_errors=True))
    if args.py_spy:
        args.py_spy.mkdir(parents=True, exist_ok=True)
    files = tls.make(workdir / "tls")
    started = datetime.datetime.now(datetime.UTC)
    results: list[Result] = []
    errors: list[str] = []
    loads = [load1()]
    for name in names:
        wanted, run = SCENARIOS[name]
        for profile in [p for p in wanted if p == "none" or p in profiles]:
            print(f"== {name} ({profile})", flush=True)
            ctx = Context(
                workdir=workdir,
                profile=profile,
                n=args.n,
                max_load=args.max_load,
                quiet_wait=args.quiet_wait,
                workers=args.workers,
                timeout_factor=args.timeout_factor,
                broadcast_n=args.broadcast_n,
                broadcast_users=args.broadcast_users,
                tls=files,
                spy_dir=args.py_spy,
            )
            began = time.monotonic()
            try:
                rows = run(ctx)
            except ScenarioError as exc:
                errors.append(f"{name} ({profile}): {exc}")
                print(f"  FAILED: {exc}", flush=True)
                continue
            for row in rows:
                row.notes.extend(ctx.log)
                row.figures = {k: round(v, 1) for k, v in row.figures.items()}
                print(f"  {row.headline}={row.figures[row.headline]:,} {row.unit}  {row.check}")
            print(f"  ({time.monotonic() - began:.0f} s)", flush=True)
            results.extend(rows)
            loads.append(load1())
    _judge(results)
    print()
    print(table(results))
    for error in errors:
        print(f"error: {error}")
    report: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(),
        "load_average_between_scenarios": [round(x, 2) for x in loads],
        "results": [r.as_json() for r in results],
        "errors": errors,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"{started.strftime('%Y%m%dT%H%M%S')}-{args.scenario.replace(',', '+')}.json"
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nwrote {out}")
    if args.keep:
        print(f"work directory kept: {workdir}")
    failed = errors or any(not r.correct for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
