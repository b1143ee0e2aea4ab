#!/usr/bin/env python
"""`dummy-training demo` time to its first line and in all, against a baseline revision measured in the same run.

usage: python benchmarks/bench_demo.py [--baseline REV] [--runs 3]

The package of ``REV`` (default: the commit before the demo parsed its pipeline once, 0b7ad4c) is exported with
``git archive`` into a temporary directory; then the demo runs ``--runs`` times from it and from this checkout,
alternately, each as its own process (``python -m dummy_training demo`` with ``PYTHONPATH`` set to the
package's ``container/``), in a fresh output directory. For each, the median seconds to the first line of output
and to the end; then the ratios (this checkout / baseline). Also, in this process: loading the packaged
pipeline as the baseline did (kfp's ``load_component_from_text`` of the text re-dumped without retry policies,
pure-Python YAML, twice, plus one ``pipeline_spec``) against ``demo.load_local_pipeline`` (one parse, the C
loader where present). Run by hand (timings are not tests); the machine's load shows in both columns alike.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BASELINE = "0b7ad4c"


def export(rev: str, dest: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "container"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "x", "-C", str(dest)], input=archive, check=True)
    return dest / "container"


def run_demo(container: Path, out: Path) -> tuple[float, float]:
    """Seconds to the first line of output and to the end of ``dummy-training demo`` run from ``container``."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "dummy_training", "demo", "--output-dir", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={"PYTHONPATH": str(container), "PATH": "/usr/local/bin:/usr/bin:/bin",
                                 "HOME": str(out.parent)})
    first = None
    assert proc.stdout is not None
    for _line in proc.stdout:
        if first is None:
            first = time.monotonic() - started
    if proc.wait() != 0:
        raise SystemExit(f"the demo from {container} exited {proc.returncode}")
    return first or 0.0, time.monotonic() - started


def load_times(repeat: int = 3) -> tuple[float, float]:
    """Seconds to load the packaged pipeline as the baseline did, and with ``load_local_pipeline``."""
    import yaml
    from kfp import components

    from dummy_training.kfp import demo

    path = demo.packaged_pipeline()
    text = path.read_text()

    def before() -> None:
        for _ in range(2):  # pipeline_arguments, then run_pipeline: each parsed, re-dumped and parsed again
            docs = [demo._drop_key(d, "retryPolicy") for d in yaml.safe_load_all(text) if d is not None]
            component = components.load_component_from_text(yaml.safe_dump_all(docs, sort_keys=False))
        component.pipeline_spec  # noqa: B018 - the property parses the text once more

    def after() -> None:
        demo._LOADED.clear()
        demo.load_local_pipeline(path)

    times = []
    for fn in (before, after):
        best = float("inf")
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        times.append(best)
    return times[0], times[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help=f"git revision (default {DEFAULT_BASELINE})")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "container"))
    with tempfile.TemporaryDirectory() as tmp:
        base = export(args.baseline, Path(tmp))
        results: dict[str, list[tuple[float, float]]] = {"baseline": [], "this": []}
        for i in range(args.runs):
            for label, container in (("baseline", base), ("this", REPO / "container")):
                results[label].append(run_demo(container, Path(tmp) / f"out-{label}-{i}"))
    med = {k: (statistics.median(f for f, _ in v), statistics.median(t for _, t in v)) for k, v in results.items()}
    print(f"dummy-training demo, median of {args.runs} runs (seconds)")
    print(f"{'':22}{'first line':>12}{'total':>10}")
    for label, name in (("baseline", f"baseline {args.baseline}"), ("this", "this checkout")):
        print(f"{name:22}{med[label][0]:12.2f}{med[label][1]:10.2f}")
    print(f"{'ratio this/baseline':22}{med['this'][0] / med['baseline'][0]:12.2f}"
          f"{med['this'][1] / med['baseline'][1]:10.2f}")
    before, after = load_times()
    print(f"\nloading the packaged pipeline (best of 3): baseline way {before:.3f} s, load_local_pipeline "
          f"{after:.3f} s, ratio {after / before:.2f}")


if __name__ == "__main__":
    main()
