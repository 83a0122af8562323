"""``python -m gan_lab.realdata dataset=<name> [dataset.…=…] [n=…] [seed=0] [out=outputs/realdata]``: what a data
set's own numbers are before any generator is measured on it.

- The domain classifier's accuracy on the held-out images (the test split of MNIST and Fashion-MNIST, the fixed
  holdout of mnist5k and digits), which training never sees: how far its features are to be trusted.
- The **floor**: ``n`` held-out real images measured exactly as a run measures its samples (FID, KID, IS, class
  coverage, precision/recall/density/coverage on the same classifier, against the same real statistics). No
  generator can be expected below it at that ``n``; a run's FID is read against it.

The classifier and the real statistics come from the same caches a run uses (trained and cached the first time).
Prints a table and writes ``<out>/<data set>.json``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from gan_lab.errors import ConfigError
from gan_lab.runs import count, parse_args

ARGS = {"n": count, "seed": int, "out": str}
USAGE = "usage: python -m gan_lab.realdata dataset=<name> [dataset.<key>=…] [n=…] [seed=0] [out=…]"


def load_source(overrides: list[str]):
    """The data set the overrides compose (``dataset=…``, ``dataset.<key>=…``, ``paths.…``), as a run builds it."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    from gan_lab.compose import build
    from gan_lab.config import config_dir

    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
    except HydraException as err:  # Hydra's message, on one line: its first line and the options it lists
        first, *rest = str(err).splitlines()
        options = [line.strip() for line in rest if line.startswith("\t") and "=" not in line]
        said = f"{first}; the options: {', '.join(options)}" if options else " ".join(line.strip() for line in
                                                                                    [first, *rest] if line.strip())
        raise ConfigError(said) from None
    return build(cfg.dataset)


def measure(source, n: int | None = None, seed: int = 0) -> dict:
    """The classifier's held-out accuracy and the floor of ``n`` held-out images (default: as many as a run measures,
    at most the held-out set), as ``{"dataset", "classifier", "floor": {key: value}, "protocols"}``."""
    from gan_lab.measure import default_samples, feature_metrics
    from gan_lab.metrics.conditional import class_accuracy
    from gan_lab.metrics.features import ImageMetrics

    spec = source.spec
    heldout, labels = getattr(source, "heldout", None), getattr(source, "heldout_labels", None)
    if not spec.is_image or heldout is None or labels is None:
        raise ConfigError("dataset", spec.name, "an image set with labelled held-out images (mnist5k, digits, mnist, "
                          "fashion_mnist, cifar10)")
    available = heldout.shape[0]
    n = min(n or default_samples(spec), available)
    suite = ImageMetrics.for_source(source, seed=seed)
    info = suite.classifier_info
    feats, logits = suite.features(heldout)  # one pass: the accuracy and the floor read the same outputs
    held_accuracy = class_accuracy(logits, labels)[0]
    pick = torch.randperm(available, generator=torch.Generator().manual_seed(seed))[:n]
    floor, protocols = feature_metrics([suite], [(feats[pick], logits[pick])])
    return {"dataset": spec.name, "shape": list(spec.shape), "train_images": len(source), "heldout_images": available,
            "classifier": {"extractor": info["extractor"], "heldout_accuracy": held_accuracy,
                           "val_accuracy": info.get("val_accuracy"), "path": info.get("path")},
            "floor_n": n, "floor": floor,
            "protocols": {**protocols, "floor": f"{n} of the {available} held-out images (seed {seed}) in place of "
                                                 "generated ones"}}


def table(result: dict) -> str:
    c = result["classifier"]
    lines = [f"{result['dataset']} {tuple(result['shape'])}: {result['train_images']} training images, "
             f"{result['heldout_images']} held out",
             f"  {c['extractor']}: held-out accuracy {c['heldout_accuracy']:.4f}"
             + (f" (validation {c['val_accuracy']:.4f})" if c.get("val_accuracy") is not None else ""),
             f"  floor ({result['floor_n']} held-out images as the samples):"]
    lines += [f"    {key:<48} {value:.4f}" for key, value in sorted(result["floor"].items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    mine = [a for a in argv if a.partition("=")[0] in ARGS]
    overrides = [a for a in argv if a not in mine]
    try:
        if not any(a.startswith("dataset=") for a in overrides):
            raise ConfigError("dataset", None, "a data set, e.g. dataset=fashion_mnist", USAGE)
        args = parse_args(mine, ARGS, "realdata")
        started = time.perf_counter()
        result = measure(load_source(overrides), args.get("n"), args.get("seed", 0))
        result["seconds"] = time.perf_counter() - started
        out = Path(args.get("out", "outputs/realdata"))
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{result['dataset']}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
    except ConfigError as err:
        print(f"gan_lab: error: {err}", file=sys.stderr)
        sys.exit(2)
    print(table(result))
    print(f"gan_lab: wrote {path}")


if __name__ == "__main__":
    main()
