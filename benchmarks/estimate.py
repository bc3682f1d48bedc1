"""Wall-time estimates of a whole DL search and a 600-epoch retraining from measured steps.

    python benchmarks/estimate.py search.json train.json

Reads the `--json` outputs of `search_step.py` (cycle-1 and heavy pools) and `train_step.py`
and prints, per framework, the estimated hours of:

- the DL search (SPEC §4, paper Table 1): 9 cycles of 15, 15, 10 … epochs with 5, 5, 3 …
  grace epochs; an epoch is 25,000 weight-half images in steps of b (the largest batch size
  measured: the controller's pick when `--batch …,auto` ran). A step outside the grace epochs
  is the measured α step + weight step; a grace step trains the weights only and is counted as
  half of one; the epoch's validation pass over the 25,000 α-half images (forward only, no α
  step) as a sixth of a step per batch. Cycle 1 trains the cycle-1 pool (4 ops per edge);
  cycles 2–6 hold 6 ops per edge and take the heavy pool's time; cycles 7, 8, 9 hold 4, 3, 2 and
  take the heavy pool's time scaled by ops/6. JAX also compiles each cycle's programs once per
  batch size the controller passes through (24, 48, 96, 128 on a large GPU): 4 × 9 compiles of
  the measured duration;
- retraining: 600 epochs × ⌈50,000 / b⌉ steps of the measured train step, plus a test pass
  (10,000 images, forward only: a third of a step per image) every 10 epochs and in the last 5.

These are estimates from steady-state step times (data loading, checkpoints and logging are not
counted), so they are lower bounds of a real run's wall time.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict

EPOCHS = (15, 15, 10, 10, 10, 10, 10, 10, 10)
GRACE = (5, 5, 3, 3, 3, 3, 3, 3, 3)
OPS = (4, 6, 6, 6, 6, 6, 4, 3, 2)
HALF = 25_000
TRAIN_IMAGES, TEST_IMAGES = 50_000, 10_000
COMPILES_PER_CYCLE = 4


def _rows(path: str) -> list[dict]:
    with open(path) as f:
        return json.load(f)["rows"]


def search_hours(rows: list[dict]) -> dict[str, dict]:
    """Per framework: the estimate and what it rests on."""
    by = defaultdict(dict)          # framework -> pool -> (b, median s, compile s)
    for r in rows:
        pool, b = r["config"].split(" b=")
        b = int(b)
        old = by[r["framework"]].get(pool)
        if old is None or b > old[0]:
            by[r["framework"]][pool] = (b, r["median"], r.get("compile_seconds"))
    out = {}
    for fw, pools in by.items():
        if not {"cycle1", "heavy"} <= set(pools):
            continue
        b = min(pools["cycle1"][0], pools["heavy"][0])
        n = math.ceil(HALF / b)
        seconds = 0.0
        for c, (epochs, grace, ops) in enumerate(zip(EPOCHS, GRACE, OPS)):
            t = pools["cycle1"][1] if c == 0 else pools["heavy"][1] * min(ops, 6) / 6
            seconds += n * t * (grace * 0.5 + (epochs - grace) + epochs / 6)
        compile_s = 0.0
        if fw.startswith("JAX") and pools["heavy"][2]:
            compile_s = len(EPOCHS) * COMPILES_PER_CYCLE * max(pools["heavy"][2],
                                                              pools["cycle1"][2] or 0)
        out[fw] = {"b": b, "hours": (seconds + compile_s) / 3600,
                   "compile_hours": compile_s / 3600}
    return out


def train_hours(rows: list[dict], epochs: int = 600) -> dict[str, dict]:
    out = {}
    for r in rows:
        b = int(r["config"].rsplit("b=", 1)[1])
        steps = epochs * math.ceil(TRAIN_IMAGES / b)
        evals = epochs // 10 + 5
        seconds = steps * r["median"] + evals * TEST_IMAGES / b * r["median"] / 3
        if r.get("compile_seconds") and r["framework"].startswith("JAX"):
            seconds += r["compile_seconds"]
        out[r["framework"]] = {"b": b, "hours": seconds / 3600}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("search_json")
    ap.add_argument("train_json")
    args = ap.parse_args()
    search = search_hours(_rows(args.search_json))
    train = train_hours(_rows(args.train_json))
    print("| framework | DL search, estimated h (GPU-days) | of which compiling, h "
          "| 600-epoch retraining, estimated h |")
    print("|---|---:|---:|---:|")
    for fw in sorted(set(search) | set(train)):
        s, t = search.get(fw), train.get(fw)
        s_txt = f"{s['hours']:.1f} ({s['hours'] / 24:.2f}) at b={s['b']}" if s else "—"
        c_txt = f"{s['compile_hours']:.2f}" if s else "—"
        t_txt = f"{t['hours']:.1f} at b={t['b']}" if t else "—"
        print(f"| {fw} | {s_txt} | {c_txt} | {t_txt} |")
    print("\nThe paper: 0.82 GPU-days for the DL search on one GTX 1080 Ti (its own code).")


if __name__ == "__main__":
    main()
