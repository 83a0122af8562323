"""python -m gan_lab.reproduce <table> [--seeds N] [--quick] [--rows a,b] [--out DIR] [hydra overrides…]
python -m gan_lab.reproduce --list

Runs a published table as one multirun (see :mod:`gan_lab.reproduce`) and writes table.md,
reproduction.json and the sweep report into its folder. Overrides after the table apply to every job,
e.g. ``hydra/launcher=joblib hydra.launcher.n_jobs=4`` or ``accelerator=gpu``. Exit status: 0 when every
job finished, 1 when some failed (the table is still written from those that finished), 2 on bad input.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from pathlib import Path

from gan_lab.reproduce import collect, markdown, multirun_args, title, write_presets
from gan_lab.reproduce.tables import TABLES


def _list() -> str:
    lines = []
    for t in TABLES.values():
        count = "rows computed from closed forms" if callable(t.rows) else f"{len(t.rows)} rows"
        lines += [f"{t.name}: {t.title}", f"    source: {t.source}",
                  f"    {count}, {t.seeds} seeds published; full: {t.cost}", f"    --quick: {t.quick_cost}", ""]
    return "\n".join(lines).rstrip()


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(prog="python -m gan_lab.reproduce", description=__doc__.split("\n\n")[1])
    p.add_argument("table", nargs="?", help="one of: " + ", ".join(TABLES))
    p.add_argument("--list", action="store_true", help="name the tables, their sources and their cost")
    p.add_argument("--seeds", type=int, default=None, help="seeds per row (default: the published number; "
                   "with --quick the table's quick number)")
    p.add_argument("--quick", action="store_true", help="shortened training for a CPU (said in the title)")
    p.add_argument("--rows", default=None, help="comma-separated row names (default: all, or the table's quick rows "
                   "with --quick; --list-rows names them)")
    p.add_argument("--list-rows", action="store_true", help="name the table's rows and their overrides")
    p.add_argument("--out", default=None, help="the sweep folder (default outputs/reproduce/<table>/<time>)")
    return p.parse_known_args(argv)


def fail(message: str) -> int:
    print(f"gan_lab.reproduce: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args, extra = parse_args(sys.argv[1:] if argv is None else argv)
    if args.list:
        print(_list())
        return 0
    if args.table not in TABLES:
        return fail(f"table={args.table!r} is not one of: {', '.join(TABLES)} (python -m gan_lab.reproduce --list)")
    bad = [x for x in extra if x.startswith("-") or "=" not in x]
    if bad:
        return fail(f"{bad[0]!r} is neither an option of gan_lab.reproduce nor a key=value override")
    owned = [x for x in extra if x.lstrip("+~").split("=", 1)[0] in ("hydra.sweep.dir", "experiment", "seed")]
    if owned:  # the table sets these itself: an override would be recorded in its Command line but not applied
        key = owned[0].lstrip("+~").split("=", 1)[0]
        how = {"hydra.sweep.dir": "--out", "experiment": "--rows", "seed": "--seeds"}[key]
        return fail(f"{owned[0]}: the table sets {key} itself; use {how}")
    table = TABLES[args.table]
    rows = table.all_rows()
    if args.list_rows:
        print("\n".join(f"{r.name}: {r.label}  [{' '.join((*table.base, *r.overrides))}]" for r in rows))
        return 0
    if args.rows:
        wanted = args.rows.split(",")
        unknown = [w for w in wanted if w not in {r.name for r in rows}]
        if unknown:
            return fail(f"--rows {unknown[0]!r} is not a row of {table.name}: {', '.join(r.name for r in rows)}")
        rows = tuple(r for r in rows if r.name in wanted)
    elif args.quick and table.quick_rows:
        rows = tuple(r for r in rows if r.name in table.quick_rows)
    seeds = args.seeds if args.seeds is not None else (table.quick_seeds if args.quick else table.seeds)
    if seeds < 1:
        return fail(f"--seeds {seeds}: at least 1 (2 or more for a standard error)")
    stamp = datetime.datetime.now().strftime("%Y-%m-%d/%H-%M-%S")
    sweep_dir = Path(args.out or f"outputs/reproduce/{table.name}{'_quick' if args.quick else ''}/{stamp}").resolve()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    from gan_lab.config import config_dir

    presets = write_presets(table, rows, sweep_dir, Path(config_dir()), args.quick)
    gan_args = multirun_args(rows, seeds, sweep_dir, presets, extra)
    shown = " ".join(["python -m gan_lab.reproduce", table.name, *(["--quick"] if args.quick else []),
                      f"--seeds {seeds}", f"--rows {','.join(r.name for r in rows)}", *extra])
    print(f"gan_lab.reproduce: {title(table, args.quick)}: {len(rows)} rows × {seeds} seeds into {sweep_dir}")
    print(f"gan_lab.reproduce: python -m gan_lab {' '.join(gan_args)}", flush=True)
    status = subprocess.call([sys.executable, "-m", "gan_lab", *gan_args])
    cells, statuses = collect(table, rows, sweep_dir)
    if not statuses:
        print(f"gan_lab.reproduce: error: no job ran (python -m gan_lab exited with status {status}; its message is "
              "above); no table written", file=sys.stderr)
        return 1
    text = markdown(table, cells, args.quick, seeds, shown, statuses)
    (sweep_dir / "table.md").write_text(text, encoding="utf-8")
    (sweep_dir / "reproduction.json").write_text(json.dumps(
        {"table": table.name, "title": title(table, args.quick), "source": table.source, "quick": args.quick,
         "seeds": seeds, "command": shown, "jobs": statuses, "cells": [c.as_dict() for c in cells]},
        indent=1, default=float), encoding="utf-8")
    from gan_lab.report import write_report

    write_report(sweep_dir)  # again, now with the table as its first section
    print(text)
    print(f"gan_lab.reproduce: table {sweep_dir / 'table.md'}; report {sweep_dir / 'report.html'}")
    if status != 0 or set(statuses) - {"finished"}:
        print(f"gan_lab.reproduce: some jobs did not finish ({statuses}); the table uses those that did",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
