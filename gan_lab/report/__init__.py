"""``python -m gan_lab.report FOLDER``: one self-contained HTML page for a run folder or a sweep folder;
``python -m gan_lab.report RUN RUN … [--out FILE]``: one page comparing any runs (:mod:`.compare_page`).

Everything is inline (CSS, a few lines of vanilla JS that sort the leaderboard, and every picture as a base64
PNG data URI, the plots drawn here with matplotlib), so a page opens offline and travels as one file.
:mod:`.run_page` and :mod:`.sweep_page` build the two pages from the pieces in :mod:`.markup`, reading the
folders through :mod:`.folders`; this module chooses between them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gan_lab.report.compare_page import write_comparison
from gan_lab.report.folders import NotAReportFolder, is_run, is_sweep, load_run, sweep_jobs
from gan_lab.report.markup import esc
from gan_lab.report.run_page import curve_panels, sample_frames, write_run_report
from gan_lab.report.sweep_page import chosen_metrics, write_sweep_report

__all__ = ["NotAReportFolder", "chosen_metrics", "curve_panels", "esc", "is_run", "is_sweep", "load_run", "main",
           "sample_frames", "sweep_jobs", "write_comparison", "write_report", "write_run_report", "write_sweep_report"]


def write_report(path) -> Path:
    """Write ``<path>/report.html`` for a run folder, or for a sweep folder (and each job's own); return it."""
    path = Path(path)
    if path.is_dir() and is_run(path):
        return write_run_report(path)
    if path.is_dir() and is_sweep(path):
        return write_sweep_report(path)
    if not path.exists():
        raise NotAReportFolder(f"{path} does not exist")
    raise NotAReportFolder(f"{path} is neither a run folder (metrics.json or .hydra/) "
                           "nor a sweep folder (multirun.yaml or run subfolders)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gan_lab.report",
                                     description="Write a self-contained report.html for a run or sweep folder; "
                                                 "given several folders, one page comparing their runs.")
    parser.add_argument("folders", type=Path, nargs="+", metavar="folder",
                        help="a run folder or a multirun sweep folder; several: compare their runs")
    parser.add_argument("--out", type=Path, default=Path("comparison.html"),
                        help="where the comparison page goes (several folders; default: ./comparison.html)")
    args = parser.parse_args(argv)
    try:
        if len(args.folders) == 1:
            out = write_report(args.folders[0])
        else:
            for folder in args.folders:
                if not (folder.is_dir() and (is_run(folder) or is_sweep(folder))):
                    raise NotAReportFolder(f"{folder} is neither a run folder (metrics.json or .hydra/) nor a sweep "
                                           "folder (multirun.yaml or run subfolders)")
            out = write_comparison(args.folders, args.out)
    except NotAReportFolder as e:
        print(f"gan_lab: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"gan_lab: report {out}")
