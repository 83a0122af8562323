"""``python -m benchmarks.dataset_zip [--source DIR] [--repeats 5]``: the field's archive layout on Fashion-MNIST.

* **conversion**: ``gan_lab.dataset_tool`` from the IDX files (Debian's ``dataset-fashion-mnist`` by default) to a
  zip at 28 px, at 32 px by zero padding (``--pad-to 32``) and at 32 px by resizing (``--resolution 32``):
  images written per second in the writing loop (the IDX files' reading excluded), and the whole call's wall and
  process CPU time (the reading included).
* **reading**: ``dataset=zip`` decoding the whole archive into memory, the header scan of a streamed archive, and
  minibatches of 64 per second, drawn at random, from the streamed zip (PNG decoding per image) against the
  in-memory float32 tensor and the uint8 codes the data module keeps on the device (gathered, then decoded).
  Medians of interleaved repeats, one torch thread.

Writes ``dataset_zip.json`` (``--out``). Run on an idle machine; the figures are in docs/guide.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from gan_lab.data.files import idx as idx_module
from gan_lab.data.files.zipped import image_zip
from gan_lab.data.module import _decode, eight_bit
from gan_lab.dataset_tool import convert

SHAPES = {"28 px": {}, "32 px, --pad-to 32": {"pad_to": 32}, "32 px, --resolution 32": {"resolution": 32}}


def _timed(fn) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def _batches_per_s(fetch, size: int, seconds: float, seed: int) -> float:
    g = torch.Generator().manual_seed(seed)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fetch(torch.randint(size, (64,), generator=g))
        done += 1
    return done / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", default=str(idx_module.FASHION_MNIST_SYSTEM_DIR))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seconds", type=float, default=2.0, help="per throughput measurement")
    p.add_argument("--out", default="dataset_zip.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    result: dict = {"conversion": {}, "reading": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, shape in SHAPES.items():
            dest = Path(tmp) / f"{len(result['conversion'])}.zip"
            wall, cpu, done = _timed(lambda: convert(args.source, dest, progress=False, **shape))  # noqa: B023
            result["conversion"][name] = {"images": done["count"], "loop_s": round(done["seconds"], 2),
                                          "images_per_s": round(done["count"] / done["seconds"]),
                                          "whole_wall_s": round(wall, 2), "whole_cpu_s": round(cpu, 2)}
            print(name, result["conversion"][name], flush=True)
        archive = Path(tmp) / "0.zip"
        wall, cpu, memory = _timed(lambda: image_zip(archive, in_memory=True))
        result["reading"]["load into memory"] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                                                 "images_per_s": round(memory.size / wall)}
        wall, cpu, stream = _timed(lambda: image_zip(archive, in_memory=False))
        result["reading"]["open streamed (header scan)"] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}
        codes = eight_bit(memory.data)
        ways = {"streamed zip (decode 64 PNGs)": lambda i: stream.__getitems__(i.tolist()),
                "in memory, float32": lambda i: memory.data[i],
                "in memory, uint8 codes + decode": lambda i: _decode(codes[i])}
        rates: dict[str, list[float]] = {k: [] for k in ways}
        for r in range(args.repeats):
            for k, fetch in ways.items():
                rates[k].append(_batches_per_s(fetch, memory.size, args.seconds, r))
        result["reading"]["batches of 64 per s (median)"] = {k: round(statistics.median(v)) for k, v in rates.items()}
        print(json.dumps(result["reading"], indent=1), flush=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
