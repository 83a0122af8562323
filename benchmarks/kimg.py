"""``python -m benchmarks.kimg``: seconds per thousand images (s/kimg) of the modern image GANs' full training
recipes, the figure stylegan2-ada-pytorch and stylegan3 publish for each configuration.

Each case is one real run of the lab (``gan_lab.train.train``, as ``python -m gan_lab`` calls it) with its
preset's whole recipe on: lazy R1 (and R2), the path-length penalty, ADA's pipeline, G's EMA, style mixing and the
schedules, whatever the preset sets. W warm-up iterations are run and ignored, then N are timed by
:class:`benchmarks.bench.WindowTimer` (``torch.cuda.synchronize()`` at both ends). N is a multiple of 16, so the
window holds every lazy regularizer's share (R1 every 16 D updates, the path length every 4 G updates) as a long
run does. s/kimg = 1000 / (iterations/s × batch × k): a thousand real images shown to D, the references' unit
(k = 1 D update per iteration in every case).
Evaluation, sample grids and checkpoints are off inside the window (the references' figures exclude their metrics
too), and the run is one process on one device.

Cases (the data: the mnist5k digits as 3-channel images, zero-padded with −1 to 32 px, or 4× upsampled to 112
and padded to 128 px; only the shape matters to the speed):

* ``stylegan2_128``: -ADA's default configuration (``--cfg=auto``) at 128 px on one GPU, as stylegan3's
  docs/configs.md lists it ("Old StyleGAN2-ADA configurations", ``--cfg=stylegan2 --gpus=1 --batch=32
  --gamma=0.1024 --map-depth=2 --glr=0.0025 --dlr=0.0025 --cbase=16384``): published **12.51 s/kimg on a V100,
  6.79 on an A100**. Here ``experiment=stylegan2_small`` (which is 'auto' for one device) at full width
  (z, w 512; channel_max 512; γ 0.1024).
* ``stylegan2_32``: ``experiment=stylegan2_cifar``, -ADA's CIFAR-10 configuration (batch 64). No one-GPU figure
  is published for it.
* ``r3gan_32``: ``experiment=r3gan``, R3GAN's CIFAR-10 networks and recipe (R1 + R2 at every D update), at the
  authors' 64 images per GPU (their batch of 512 is over 8 GPUs).
* ``r3gan_128``: ``experiment=r3gan`` on the authors' FFHQ-256 widths cut to 128 px (``[768, 768, 768, 768, 384,
  192]``, groups of 16 channels, 2 blocks a stage), 32 images per GPU as their FFHQ runs. No figure is published.

Departures from the references' timing: they run their top resolutions in fp16 (stylegan2: the top 4, R3GAN: the
top 3 or 4 stages); here the precision is the run's (``--precision``: 32-true by default, or bf16-mixed). The
references feed data with worker processes; here an in-memory set is gathered on the device.

Writes ``--out`` (JSON: one row per case, with the published figures beside) and prints a table. On a machine
without CUDA, ``--device cpu --smoke`` runs every case at tiny widths and batch 4, so that the measurement itself
is tested anywhere (tests/test_bench.py); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.bench import Case, case_config, run_lab
from gan_lab.data.base import DataSpec, TensorSource

TINY = {  # --smoke: the same recipes at sizes a CPU runs in seconds
    "stylegan2": ("model.z_dim=16", "model.w_dim=16", "model.channel_max=8", "train.batch_size=4",
                  "model.mbstd_group=4"),
    "r3gan": ("model.widths=[16]", "model.group_size=8", "model.blocks=1", "train.batch_size=4"),
}


@dataclass(frozen=True)
class KimgCase:
    case: Case
    family: str  # stylegan2 | r3gan (which TINY overrides --smoke adds)
    published: dict[str, float]  # GPU -> s/kimg the reference publishes for one GPU ({} where none is)
    source: str


def mnist5k_128(count: int = 1000) -> TensorSource:
    """The first ``count`` mnist5k digits as 3×128×128 images: upsampled 4× (bilinear) to 112 px, zero-padded with
    −1 to 128, grey repeated to 3 channels (only the shape matters to a speed measurement)."""
    from gan_lab.data.images import mnist5k

    digits = mnist5k(holdout=0).data[:count]
    big = F.interpolate(digits, scale_factor=4, mode="bilinear", align_corners=False).clamp(-1, 1)
    images = F.pad(big, (8, 8, 8, 8), value=-1.0).expand(-1, 3, -1, -1).contiguous()
    return TensorSource(images, DataSpec("mnist5k_128", (3, 128, 128), "image"))


SG2_AUTO_128 = ("experiment=stylegan2_small", "model.z_dim=512", "model.w_dim=512", "model.channel_max=512",
                "regularizer.weight=0.1024")
CASES = {
    "stylegan2_128": KimgCase(Case("stylegan2_128", SG2_AUTO_128, 16, 32, "benchmarks.kimg.mnist5k_128"),
                              "stylegan2", {"V100": 12.51, "A100": 6.79},
                              "stylegan3 docs/configs.md, -ADA's default configuration, 128 px, 1 GPU"),
    "stylegan2_32": KimgCase(Case("stylegan2_32", ("experiment=stylegan2_cifar",), 16, 32,
                                  "benchmarks.bench.mnist5k_32"), "stylegan2", {},
                             "-ADA's CIFAR-10 configuration (no one-GPU figure published)"),
    "r3gan_32": KimgCase(Case("r3gan_32", ("experiment=r3gan", "train.batch_size=64"), 16, 32,
                              "benchmarks.bench.mnist5k_32"), "r3gan", {},
                         "R3GAN's CIFAR-10 configuration, 64 images per GPU (no figure published)"),
    "r3gan_128": KimgCase(Case("r3gan_128", ("experiment=r3gan", "model.widths=[768,768,768,768,384,192]",
                                             "train.batch_size=32"), 16, 32, "benchmarks.kimg.mnist5k_128"),
                          "r3gan", {}, "R3GAN's FFHQ-256 widths cut to 128 px, 32 images per GPU (no figure "
                          "published)"),
}


def measure(name: str, device: str, precision: str, smoke: bool = False) -> dict[str, Any]:
    """One timed run of case ``name``: its row (iterations/s, images/s, s/kimg, parameters, the published
    figures)."""
    spec = CASES[name]
    case, extra = spec.case, TINY[spec.family] if smoke else ()
    warmup, iterations = (1, 2) if smoke else (case.warmup, case.iterations)
    cfg = case_config(case, device, precision, warmup + iterations, extra)
    side = run_lab(cfg, warmup, iterations)
    batch = int(cfg.train.batch_size)
    shown = batch * int(cfg.train.k)  # real images D sees per generator iteration (k D updates)
    return {"case": name, "device": device, "precision": precision, "batch_size": batch, "warmup": warmup,
            "iterations": iterations, "smoke": smoke, "it_s": round(side.it_s, 3),
            "images_s": round(side.it_s * shown, 1), "s_per_kimg": round(1000 / (side.it_s * shown), 3),
            "params": {"generator": side.params_g, "discriminator": side.params_d}, "trained": side.trained,
            "published_s_per_kimg": spec.published, "source": spec.source,
            "overrides": [*case.overrides, *extra]}


def markdown(rows: list[dict[str, Any]], device_name: str) -> str:
    lines = [f"Seconds per thousand real images, one process on {device_name}:", "",
             "| case | precision | batch | G / D parameters | it/s | images/s | s/kimg | published (one GPU) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['case']} | {r['precision']} | | | | | {r['error']} | |")
            continue
        published = ", ".join(f"{v} ({gpu})" for gpu, v in r["published_s_per_kimg"].items()) or "—"
        lines.append(f"| {r['case']} | {r['precision']} | {r['batch_size']} | {r['params']['generator']:,} / "
                     f"{r['params']['discriminator']:,} | {r['it_s']:.2f} | {r['images_s']:.0f} | "
                     f"{r['s_per_kimg']:.2f} | {published} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.kimg", description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)} (default: all)")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--precision", choices=("32-true", "bf16-mixed"), default="32-true")
    p.add_argument("--smoke", action="store_true", help="tiny widths and batch 4: test the measurement, not a speed")
    p.add_argument("--out", default="kimg.json", help="where the JSON rows go (a .md table is written beside)")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.cases.split(",") if n.strip()]
    unknown = [n for n in names if n not in CASES]
    if unknown or not names:
        p.error(f"--cases: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(CASES)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available (--device cpu --smoke tests the measurement)")
    device_name = torch.cuda.get_device_name(0) if args.device == "cuda" else "the CPU"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for name in names:  # one case at a time, written as it ends: a later failure or time-out keeps the earlier rows
        print(f"kimg: {name} {args.device} {args.precision} ...", file=sys.stderr, flush=True)
        try:
            row = measure(name, args.device, args.precision, args.smoke)
        except Exception as err:  # an out-of-memory case is a row, not the end of the measurement
            row = {"case": name, "device": args.device, "precision": args.precision,
                   "error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:300]}
        finally:
            gc.collect()  # the finished run's networks and optimiser states, before the next case allocates
            if args.device == "cuda":
                torch.cuda.empty_cache()
        rows.append(row)
        print(f"kimg: {name}: " + (row["error"] if "error" in row else f"{row['s_per_kimg']:.2f} s/kimg"),
              file=sys.stderr, flush=True)
        payload = {"device": device_name, "torch": torch.__version__, "rows": rows}
        out.write_text(json.dumps(payload, indent=2) + "\n")
        out.with_suffix(".md").write_text(markdown(rows, device_name))
    print(markdown(rows, device_name))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
