"""The published tables the lab reproduces: each row's setup as overrides, and the paper's figures.

A row's ``overrides`` are ordinary command-line overrides applied on top of the table's ``base``
experiment; ``paper`` maps a column's metrics.json key to the published (value, standard error), the
error None where the paper gives none. Rows marked ``best`` are the lab's own best configuration for
the table (no paper value: their ``target`` is the bar to clear — every published row's best figure).

Paper values are copied from the papers' tables, as the authors publish them in their repositories
(PacGAN: Lin et al. 2018, Tables 1 and 2, fjxmlzn/PacGAN ``*/results/Table*.png``; VEEGAN: Srivastava
et al. 2017, Table 1, akashgit/VEEGAN ``tab.png``); the classics' values are closed forms
(:mod:`gan_lab.reproduce.classics`).
"""

from __future__ import annotations

from gan_lab.metrics.registry import SAMPLERS
from gan_lab.reproduce import classics
from gan_lab.reproduce.spec import Column, Row, Table

# What every --quick run leaves out: measurements and files during training (the final evaluation stays).
_QUICK_QUIET = ("eval.every=0", "train.sample_every=0", "train.checkpoint_every=0")

TOY_COLUMNS = (Column("toy/modes_captured", "modes", 1), Column("toy/high_quality_pct", "high quality %", 1),
               Column("toy/reverse_kl", "reverse KL", 2))


# What the lab's best rows must clear: every published row's best figure on that data.
# Which side of the bar meets it is the metric's direction (gan_lab/metrics/registry.py).
_TARGETS = {"ring": {"toy/modes_captured": 8.0, "toy/high_quality_pct": 98.0},
            "grid": {"toy/modes_captured": 24.8, "toy/high_quality_pct": 95.0}}


# The lab's best configuration per data set (conf/experiment/toy_best*.yaml) and how each row names it.
_BEST = {"ring": ("toy_best", "experiment=toy_best: equal lrs 1e-3, linear decay, 50k iterations"),
         "grid": ("toy_best_grid", "experiment=toy_best_grid: toy_best with instance noise σ 0.5 annealed to 0 by "
                  "halfway, 50k iterations")}


def _best_row(data: str) -> Row:
    # Judged on G's own samples and on those of its post-hoc samplers (the same runs; gan_lab/filters.py), on
    # each table's data (PacGAN's: a training set of 100,000 points). Its length is stated again as an override:
    # unrolled_toy's base fixes every other row at 25,000.
    prefixes = ("", *(f"{sampler}/" for sampler in SAMPLERS))
    targets = {f"{prefix}{k}": v for prefix in prefixes for k, v in _TARGETS[data].items()}
    experiment, label = _BEST[data]
    return Row(f"{data}_best", f"{data}: lab best ({label}; drs/, jbt/, jbt_drs/: its samples through DRS, "
               "Jacobian-based truncation, and JBT then DRS)",
               (f"experiment={experiment}", f"dataset={data}", "train.iterations=50000"), best=True, target=targets)


def _pacgan_rows() -> tuple[Row, ...]:
    # PacGAN Table 1 (mean ± standard error over 10 trials): modes, high-quality %, reverse KL.
    published = {
        ("ring", 1): ((6.3, 0.5), (98.2, 0.2), (0.45, 0.09)),
        ("ring", 2): ((7.9, 0.1), (95.6, 2.0), (0.07, 0.03)),
        ("ring", 3): ((7.8, 0.1), (97.7, 0.3), (0.10, 0.02)),
        ("ring", 4): ((7.8, 0.1), (95.9, 1.4), (0.07, 0.02)),
        ("grid", 1): ((17.3, 0.8), (94.8, 0.7), (0.70, 0.07)),
        ("grid", 2): ((23.8, 0.7), (91.3, 0.8), (0.13, 0.04)),
        ("grid", 3): ((24.6, 0.4), (94.2, 0.4), (0.06, 0.02)),
        ("grid", 4): ((24.8, 0.2), (93.6, 0.6), (0.04, 0.01)),
    }
    rows = []
    for data in ("ring", "grid"):
        for m in (1, 2, 3, 4):
            values = published[(data, m)]
            rows.append(Row(f"{data}_{'gan' if m == 1 else f'pac{m}'}", f"{data}: {'GAN' if m == 1 else f'PacGAN{m}'}",
                            (f"dataset={data}", f"tricks.pack={m}", f"train.batch_size={100 * m}"),
                            {c.key: v for c, v in zip(TOY_COLUMNS, values)}))
        rows.append(_best_row(data))
    return tuple(rows)


def _unrolled_rows() -> tuple[Row, ...]:
    # VEEGAN Table 1 (Srivastava et al. 2017), 2,500 samples, 3σ: modes and high-quality % (no errors given).
    published = {("ring", 0): ((1.0, None), (99.3, None)), ("ring", 5): ((7.6, None), (35.6, None)),
                 ("grid", 0): ((3.3, None), (0.5, None)), ("grid", 5): ((23.6, None), (16.0, None))}
    rows = []
    for data in ("ring", "grid"):
        for k in (0, 5):
            values = published[(data, k)]
            name, label = ("gan", "GAN") if k == 0 else ("unrolled5", "Unrolled GAN (5)")
            rows.append(Row(f"{data}_{name}", f"{data}: {label}",
                            (f"dataset={data}", f"tricks.unroll_steps={k}"),
                            {c.key: v for c, v in zip(TOY_COLUMNS[:2], values)}))
        rows.append(_best_row(data))
    return tuple(rows)


STACKED_COLUMNS = (Column("val/stacked_modes_*", "modes", 1), Column("val/stacked_reverse_kl_*", "reverse KL", 2))


def _stacked_rows() -> tuple[Row, ...]:
    # PacGAN Table 2: its own DCGAN and PacDCGAN2–4 (mean ± s.e., 10 trials); Unrolled GAN as VEEGAN reports it.
    modes, kl = (c.key for c in STACKED_COLUMNS)
    rows = [Row("dcgan", "DCGAN", ("tricks.pack=1",), {modes: (78.9, 6.46), kl: (4.50, 0.127)})]
    for m, value in ((2, (0.06, 0.003)), (3, (0.06, 0.003)), (4, (0.07, 0.005))):
        rows.append(Row(f"pac{m}", f"PacDCGAN{m}", (f"tricks.pack={m}", f"train.batch_size={64 * m}"),
                        {modes: (1000.0, 0.0), kl: value}))
    rows.append(Row("unrolled5", "DCGAN, unrolled 5 steps", ("tricks.unroll_steps=5",),
                    {modes: (48.7, None), kl: (4.32, None)}))
    rows.append(Row("best", "lab best (PacDCGAN4 + EMA 0.999)", ("tricks.pack=4", "train.batch_size=256",
                                                                  "tricks.ema=0.999"),
                    best=True, target={modes: 1000.0, kl: 0.05}))
    return tuple(rows)


TABLES: dict[str, Table] = {}


def _add(table: Table) -> None:
    TABLES[table.name] = table


_add(Table(
    name="pacgan_toy",
    title="PacGAN Table 1: mode collapse on the ring of 8 and the grid of 25",
    source="Lin, Khetan, Fanti & Oh 2018, PacGAN: The power of two samples in GANs, Table 1 (setup: the authors' "
           "code, fjxmlzn/PacGAN)",
    base=("experiment=pacgan_toy",),
    columns=TOY_COLUMNS,
    rows=_pacgan_rows(),
    seeds=10,
    cost="8 published rows × 10 seeds × 400,000 iterations (batch 100–400): about 2 h per run on 2 CPU cores; "
         "a GPU run is bound by launches (~10 min per run at ~700 it/s): ~15 GPU-hours in all; the 2 best rows "
         "× 10 seeds × 50,000 iterations: about 8–10 minutes per run on 2 CPU cores (two runs at a time)",
    quick=("train.iterations=800", "train.log_every=100", *_QUICK_QUIET),
    quick_seeds=2,
    quick_cost="20 runs of 800 iterations: about 10 minutes on 2 CPU cores",
    notes="ALI's row is not reproduced (the lab has no encoder). PacGAN-m: 100 packs of m samples per minibatch. "
          "The best rows' drs/ and jbt_drs/ cells count the runs whose Discriminator Rejection Sampling measured "
          "(n says how many; a run where it gave up says why in its metrics.json).",
))

_add(Table(
    name="unrolled_toy",
    title="Unrolled GAN on the ring and the grid, against VEEGAN's Table 1",
    source="Metz, Poole, Pfau & Sohl-Dickstein 2017, Unrolled GANs (setup: the authors' reference notebook, "
           "poolio/unrolled_gan); anchors: Srivastava et al. 2017, VEEGAN, Table 1",
    base=("experiment=ring_collapse", "train.iterations=25000", "eval.samples=2500"),
    columns=TOY_COLUMNS[:2],
    rows=_unrolled_rows(),
    seeds=10,
    cost="6 rows × 10 seeds × 25,000 iterations (batch 512; the best rows 50,000): about 11 hours on 2 CPU "
         "cores, two runs at a time (measured per run: GAN 6–8 minutes, unrolled 5 about 50, best 8–10); "
         "~3 GPU-hours",
    quick=("train.iterations=1500", "train.log_every=100", *_QUICK_QUIET),
    quick_seeds=2,
    quick_cost="12 runs of 1,500 iterations: about 10 minutes on 2 CPU cores",
    notes="The Unrolled GAN paper's ring has radius 2 and std 0.02; its reference notebook, like the lab, "
          "radius 1 and std 0.01 (the same ratio, but not the same training: README, \"Published rows at "
          "their full length\"). VEEGAN gives no errors, so agreement uses the lab's standard error alone. "
          "The best rows' drs/ and jbt_drs/ cells count the runs whose Discriminator Rejection Sampling measured "
          "(n says how many; a run where it gave up says why in its metrics.json).",
))

_add(Table(
    name="stacked_mnist",
    title="PacGAN Table 2: modes of Stacked MNIST (1,000 class triples)",
    source="Lin, Khetan, Fanti & Oh 2018, PacGAN, Table 2 (setup: the authors' code, fjxmlzn/PacGAN "
           "stacked_MNIST_experiments/VEEGAN_experiment: DCGAN, batch 64, Adam 2e-4 β₁ 0.5, z 100, 128,000 "
           "training images, 50 epochs, G's optimiser stepped twice per D step); the Unrolled GAN row as VEEGAN "
           "(Srivastava et al. 2017) Table 2 reports it",
    base=("model=dcgan", "dataset=stacked_mnist", "dataset.size=128000", "loss=ns", "regularizer=none",
          "optimizer.d.lr=2e-4", "optimizer.g.lr=2e-4", "train.batch_size=64", "train.g_steps=2",
          "train.iterations=100000",
          "train.checkpoint_every=10000", "train.sample_every=10000", "eval.every=10000"),
    columns=STACKED_COLUMNS,
    rows=_stacked_rows(),
    seeds=10,
    cost="6 rows × 10 seeds × 100,000 iterations of DCGAN at 3×28×28 (the unrolled row ~6× an iteration): "
         "about 5 h per run on 2 CPU cores; ~30 GPU-hours in all (eager; fewer with train.cuda_graphs=true)",
    quick=("train.iterations=600", "dataset.size=10000", "eval.samples=2600", "train.log_every=50", *_QUICK_QUIET),
    quick_seeds=2,
    quick_rows=("dcgan", "pac4"),
    quick_cost="DCGAN and PacDCGAN4 only, 4 runs of 600 iterations, 2,600 samples scored: about 6 minutes on 2 CPU "
               "cores (300 iterations of all six rows took 17 minutes and every row still had 1–2 modes)",
    notes="Data pool: the lab's 128,000 stacked images are drawn from the ~4,500 mnist5k training digits; the "
          "reference draws them from all 70,000 MNIST digits. The mode of an image is the triple of classes the "
          "mnist5k domain classifier gives its channels (PacGAN used a CNN trained on MNIST); 26,000 samples "
          "scored. G steps twice per iteration (train.g_steps=2), as the authors' DCGAN code does. VEEGAN reports "
          "DCGAN at 99 modes / KL 3.40.",
))

_add(Table(
    name="classics",
    title="The lecture notes' experiments against their closed forms",
    source="Goodfellow et al. 2014 (Proposition 1), Arjovsky et al. 2017 (Example 1), Huszár 2015 (JS_π); "
           "closed forms in docs/science.md",
    base=(),
    columns=(Column("value", "value", 3),),
    rows=classics.rows,  # closed forms computed when the table is run
    seeds=5,
    cost="5 rows × 5 seeds, 600–1,500 iterations of 1-D or 2-D models: about 10 minutes on 2 CPU cores",
    quick=_QUICK_QUIET,
    quick_seeds=2,
    quick_cost="10 short runs: about 5 minutes on 2 CPU cores",
))
