#!/usr/bin/env python
"""Look at the reports as a person would (run by hand, not in CI): render them to HTML and screenshot them.

usage: python benchmarks/report_screenshot.py [--out DIR] [--members N] [--no-screenshot]

Makes, in DIR (default: a new temp directory; keep screenshots out of the repository):

  inject.md / .html / .png     `dummy-training repack --report` on an example model without hyperparameters.json
                               and with N extra members (default 80: past the report's 50, so the table ends in
                               its one summary line), some with hostile names (pipes, backticks, HTML, a
                               newline, a bidi override)
  preserve.md / .html / .png   the same model with its own root hyperparameters.json
  sagemaker-failed.md / ...    a SageMaker launcher's report of a failed job (from a JobSummary as the
                               launcher fills it: the real renderer, made-up job data)

The HTML comes from the ``markdown`` package (the [test] extra) with tables and fenced code, as a Markdown viewer
such as the KFP UI's renders it; the PNG from headless Chromium (Debian: ``apt-get install -y chromium``),
1200x1600. Open the PNGs with an image viewer; what to check: the decision line first, the tables intact (one
row per member, no name spilling into the next column), hostile names shown as text, links clickable.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path

CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; font-size: 14px;
       color: #202124; margin: 24px 32px; max-width: 1100px; }
h1 { font-size: 22px; border-bottom: 1px solid #dadce0; padding-bottom: 6px; }
h2 { font-size: 17px; margin-top: 22px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #dadce0; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f1f3f4; }
code, pre { font-family: "Roboto Mono", Menlo, monospace; font-size: 12.5px; background: #f1f3f4; }
pre { padding: 8px 12px; }
"""

HOSTILE = ["data/pipe|in|name.bin", "data/back`tick`.txt", "data/<b>not bold</b>.txt",
           "data/[link](https://example.invalid)", "data/**stars** and _underscores_.txt",
           "data/bidi\u202egnp.exe", "data/new\nline.txt"]


def to_html(markdown_text: str, title: str) -> str:
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables", "fenced_code"])
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{CSS}</style></head>" \
           f"<body>{body}</body></html>"


def screenshot(html_path: Path, png_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("chromium not found: apt-get install -y chromium (or pass --no-screenshot)")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", f"--screenshot={png_path}", "--window-size=1200,1600",
                        html_path.as_uri()], check=True, capture_output=True, timeout=120)


def example_model(path: Path, extra_members: int, *, own_hyperparameters: bool) -> Path:
    """The example model (``dummy_training.kfp.example_model``) plus ``extra_members`` small files, some with
    hostile names."""
    import json

    from dummy_training.kfp.example_model import OWN_HYPERPARAMETERS, example_members

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        members = list(example_members())
        names = HOSTILE + [f"data/shard-{i:04d}.bin" for i in range(max(0, extra_members - len(HOSTILE)))]
        members += [(name, f"payload {i}\n".encode()) for i, name in enumerate(names[:extra_members])]
        if own_hyperparameters:
            members.append(("hyperparameters.json", json.dumps(OWN_HYPERPARAMETERS).encode()))
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            tar.addfile(info, io.BytesIO(data))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return path


def repack_report(out: Path, name: str, model: Path, hyperparameters: Path) -> Path:
    report = out / f"{name}.md"
    subprocess.run([sys.executable, "-m", "dummy_training", "-q", "repack", "--model", str(model),
                    "--hyperparameters", str(hyperparameters), "--output-dir", str(out / f"{name}-output"),
                    "--report", str(report), "--no-progress"], check=True, stdout=subprocess.DEVNULL)
    return report


def failed_job_report(out: Path) -> Path:
    from dummy_training.sagemaker.report import JobSummary, render
    from dummy_training.step.report import write_report

    name = "dummy-training-3f2a9c1e-repack"
    job = JobSummary(
        backend="SageMaker", job_name=name, region="us-east-1", status="Failed",
        job_arn=f"arn:aws:sagemaker:us-east-1:123456789012:processing-job/{name}",
        failure_reason="AlgorithmError: dummy-training: error: the archive has no root hyperparameters.json and "
                       "no hyperparameters were given",
        instance_type="ml.m5.large", instance_count=1,
        created=datetime(2026, 1, 5, 9, 30, 2, tzinfo=UTC), started=datetime(2026, 1, 5, 9, 32, 41, tzinfo=UTC),
        ended=datetime(2026, 1, 5, 9, 33, 7, tzinfo=UTC), wait_seconds=241.7,
        error=f"processing job {name} failed: AlgorithmError: dummy-training: error: the archive has no root "
              "hyperparameters.json and no hyperparameters were given")
    report = out / "sagemaker-failed.md"
    write_report(report, render(job))
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="output directory (default: a new temp directory)")
    parser.add_argument("--members", type=int, default=80, help="extra members in the example model")
    parser.add_argument("--no-screenshot", action="store_true", help="only the Markdown and the HTML")
    args = parser.parse_args()
    from dummy_training.kfp.example_model import write_example_hyperparameters

    out = (args.out or Path(tempfile.mkdtemp(prefix="dummy-training-report-"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    hp = write_example_hyperparameters(out / "in" / "hyperparameters.json")
    reports = [
        repack_report(out, "inject", example_model(out / "in" / "bare" / "model.tar.gz", args.members,
                                                   own_hyperparameters=False), hp),
        repack_report(out, "preserve", example_model(out / "in" / "own" / "model.tar.gz", args.members,
                                                     own_hyperparameters=True), hp),
        failed_job_report(out),
    ]
    for report in reports:
        html_path = report.with_suffix(".html")
        html_path.write_text(to_html(report.read_text(), report.stem), encoding="utf-8")
        line = f"{report}\n{html_path}"
        if not args.no_screenshot:
            screenshot(html_path, report.with_suffix(".png"))
            line += f"\n{report.with_suffix('.png')}"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
