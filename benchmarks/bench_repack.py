#!/usr/bin/env python3
"""Repack benchmark (run by hand, not in CI): our CLI against gzip -dc, cp and extract-and-retar.

usage: python benchmarks/bench_repack.py [--size-mb 1024] [--rounds 3] [--small-files 2000] [--no-baseline]
                                        [--work-dir DIR]

Builds its own data in benchmarks/data/ (git-ignored, reused across runs): a model directory with fp16-like
weight shards (random bytes shaped to compress like fp16 weights: random low mantissa byte, a high byte with
a narrow exponent distribution), a tokenizer and small config files; ``tar czf`` (gzip -6) makes
``model-<size>.tar.gz`` (no hyperparameters.json: the inject case) and ``model-<size>-hp.tar.gz`` (with a
root hyperparameters.json: the preserve case). Then runs, alternating, ``rounds`` rounds of:

  baseline   extract with tarfile to a temp dir + copy hyperparameters.json + tarfile "w:gz" (level 9)
  gzip -dc   gzip -dc model.tar.gz > /dev/null
  cp         cp model.tar.gz elsewhere
  inject     python -m dummy_training repack --model A --hyperparameters H --output-dir D
  preserve   the same on the archive that already has a root hyperparameters.json
  inject --fsync / preserve --fsync   the same, durable against power loss (reported, not a target)
  inject one-block   (with --one-block) the inject archive recompressed by zlib-ng level 1, which writes the
                     whole stream as one deflate block: no boundary before the tar end, so the whole model is
                     the splice's tail and is re-deflated (reported, not a target)

and prints the median wall time and peak memory of each (PSS summed over the process tree: the parallel scan
runs in a child process), and the target ratios.

Every case writes to an output path that does not exist yet (the previous round's output is deleted before
the clock starts, and the disk is synced), as a pipeline step's fresh output directory would be: replacing a
1 GB file costs about 0.5 s of unlinking, which belongs to no case. ``--work-dir`` puts copies of the archives
and the outputs on another filesystem (e.g. an XFS mount, where ``copy_file_range`` shares extents).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MB = 1 << 20

BASELINE = r"""
import shutil, sys, tarfile, tempfile, os
archive, hp, out = sys.argv[1:4]
with tempfile.TemporaryDirectory(dir=os.path.dirname(out)) as tmp:
    with tarfile.open(archive, "r:gz") as tf:
        tf.extractall(tmp, filter="fully_trusted")
    shutil.copy(hp, os.path.join(tmp, "hyperparameters.json"))
    with tarfile.open(out, "w:gz") as tf:
        for name in sorted(os.listdir(tmp)):
            tf.add(os.path.join(tmp, name), arcname=name)
"""


# ------------------------------------------------------------------------------------------- data
def _exponent_table(rng: random.Random) -> bytes:
    """Maps a uniform byte to the high byte of an fp16 N(0, 0.02) value: sign, 5-bit exponent, 2 mantissa bits."""
    weights = {10: 1, 11: 2, 12: 4, 13: 8, 14: 12, 15: 10, 16: 4, 17: 1}  # exponents around 2^-6 .. 2^-8
    exps = [e for e, w in weights.items() for _ in range(w)]
    return bytes(((rng.getrandbits(1) << 7) | (rng.choice(exps) << 2) | rng.getrandbits(2)) for _ in range(256))


def fp16_like(nbytes: int, rng: random.Random, table: bytes) -> bytes:
    n = nbytes // 2
    out = bytearray(2 * n)
    out[0::2] = rng.randbytes(n)  # low mantissa byte: incompressible
    out[1::2] = rng.randbytes(n).translate(table)
    return bytes(out)


def build_model_dir(root: Path, size_mb: int, small_files: int) -> None:
    rng = random.Random(42)
    table = _exponent_table(rng)
    shards = 4
    shard_bytes = size_mb * MB // shards
    root.mkdir(parents=True)
    for i in range(shards):
        with open(root / f"model-{i + 1:05d}-of-{shards:05d}.safetensors", "wb") as f:
            left = shard_bytes
            while left:
                k = min(left, 32 * MB)
                f.write(fp16_like(k, rng, table))
                left -= k
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10))) for _ in range(30000)]
    merges = [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
    tokenizer = {"model": {"vocab": {w: i for i, w in enumerate(words)}, "merges": merges}}
    (root / "tokenizer.json").write_text(json.dumps(tokenizer, indent=2))
    (root / "vocab.txt").write_text("\n".join(words) + "\n")
    (root / "config.json").write_text(json.dumps({"hidden_size": 1024, "num_layers": 24, "torch_dtype": "float16"}))
    for i in range(small_files):
        d = root / "configs" / f"part{i // 500:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"layer_{i:05d}.json").write_text(json.dumps(
            {"layer": i, "shape": [rng.randint(1, 4096) for _ in range(3)], "names": rng.sample(words, 20)}, indent=2))


def prepare(size_mb: int, small_files: int) -> tuple[Path, Path, Path]:
    data = HERE / "data"
    data.mkdir(exist_ok=True)
    tag = f"{size_mb}mb-{small_files}"
    inject = data / f"model-{tag}.tar.gz"
    preserve = data / f"model-{tag}-hp.tar.gz"
    hp = data / "hyperparameters.json"
    hp.write_text(json.dumps({"epochs": 3, "learning_rate": 0.001}))
    if not (inject.exists() and preserve.exists()):
        model = data / f"model-{tag}"
        if model.exists():
            shutil.rmtree(model)
        print(f"building {model} ...", file=sys.stderr)
        build_model_dir(model, size_mb, small_files)
        subprocess.run(["tar", "czf", str(inject) + ".part", "-C", str(model), "."], check=True)
        os.replace(str(inject) + ".part", inject)
        shutil.copy(hp, model / "hyperparameters.json")
        subprocess.run(["tar", "czf", str(preserve) + ".part", "-C", str(model), "."], check=True)
        os.replace(str(preserve) + ".part", preserve)
        shutil.rmtree(model)
    return inject, preserve, hp


def one_block(archive: Path) -> Path:
    """``archive`` recompressed as a single deflate block (zlib-ng level 1), built once."""
    out = archive.with_name(archive.name.replace(".tar.gz", "-oneblock.tar.gz"))
    if not out.exists():
        from zlib_ng import zlib_ng

        print(f"building {out} ...", file=sys.stderr)
        d = zlib_ng.decompressobj(31)
        c = zlib_ng.compressobj(1, zlib_ng.DEFLATED, 31)
        with open(archive, "rb") as src, open(str(out) + ".part", "wb") as dst:
            while chunk := src.read(4 * MB):
                dst.write(c.compress(d.decompress(chunk)))
            dst.write(c.flush())
        os.replace(str(out) + ".part", out)
    return out


# ------------------------------------------------------------------------------------------- runs
def _tree_rss_kib(pid: int) -> int:
    """Memory of ``pid`` plus all its descendants (KiB): the sum of their proportional set sizes (a page shared
    by a parent and its forked child counts once overall; RSS where smaps_rollup is missing), or the largest
    single process's peak RSS so far (VmHWM) if that is more (a peak between two samples)."""
    total = 0
    hwm = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            total += _pss_kib(p)
            hwm = max(hwm, _hwm_kib(p))
            for task in Path(f"/proc/{p}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError, IndexError):
            continue
    return max(total, hwm)


def _hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def run(cmd: list[str], stdout: int | None = subprocess.DEVNULL, fresh: Path | None = None) -> tuple[float, float]:
    """Wall seconds and peak memory (MB) of one command and everything it forks, sampled every 20 ms (see
    ``_tree_rss_kib``; wait4's ru_maxrss is not used: it counts this process's own RSS, shared by the child
    between vfork and exec). ``fresh`` (the command's output file or directory) is deleted before the clock
    starts."""
    if fresh is not None:
        if fresh.is_dir():
            shutil.rmtree(fresh)
        else:
            fresh.unlink(missing_ok=True)
    # Every case starts on a quiet disk: without this, the writeback of the previous case's output (cp, the
    # baseline's extracted tree) competes with whatever the next case writes or fsyncs.
    os.sync()
    peak = [0]
    done = threading.Event()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.DEVNULL, cwd=REPO)

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], _tree_rss_kib(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, _ = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"command failed ({code}): {' '.join(cmd)}")
    return wall, peak[0] / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=1024, help="weights size in MiB (default 1024)")
    ap.add_argument("--small-files", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-baseline", action="store_true", help="skip the (slow) extract-and-retar baseline")
    ap.add_argument("--one-block", action="store_true", help="add the one-deflate-block inject case")
    ap.add_argument("--work-dir", type=Path, help="run on copies of the archives in this directory (another "
                    "filesystem), outputs there too (default: benchmarks/data)")
    args = ap.parse_args()

    inject_in, preserve_in, hp = prepare(args.size_mb, args.small_files)
    extra_in = [one_block(inject_in)] if args.one_block else []
    work = HERE / "data"
    if args.work_dir is not None:
        work = args.work_dir.resolve()
        work.mkdir(parents=True, exist_ok=True)
        for src in (inject_in, preserve_in, *extra_in):
            dst = work / src.name
            if not dst.exists() or dst.stat().st_size != src.stat().st_size:
                shutil.copy(src, dst)
        inject_in, preserve_in = work / inject_in.name, work / preserve_in.name
        extra_in = [work / p.name for p in extra_in]
    print(f"filesystem: {filesystem_of(work)}")
    print(f"inject archive:   {inject_in} ({inject_in.stat().st_size / MB:.0f} MiB)")
    print(f"preserve archive: {preserve_in} ({preserve_in.stat().st_size / MB:.0f} MiB)")
    py = sys.executable
    results: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(dir=work, prefix="out-") as tmp:
        out = Path(tmp)

        def ours(archive: Path, name: str, *extra: str) -> tuple[float, float]:
            return run([py, "-m", "dummy_training", "-q", "repack", "--model", str(archive), "--hyperparameters",
                        str(hp), "--output-dir", str(out / name), "--no-progress", *extra], fresh=out / name)

        cases = {
            "baseline": lambda: run([py, "-c", BASELINE, str(inject_in), str(hp), str(out / "baseline.tar.gz")],
                                    fresh=out / "baseline.tar.gz"),
            "gzip -dc": lambda: run(["gzip", "-dc", str(inject_in)], stdout=subprocess.DEVNULL),
            "cp": lambda: run(["cp", str(inject_in), str(out / "copy.tar.gz")], fresh=out / "copy.tar.gz"),
            "inject": lambda: ours(inject_in, "inject"),
            "preserve": lambda: ours(preserve_in, "preserve"),
            "inject --fsync": lambda: ours(inject_in, "inject-fsync", "--fsync"),
            "preserve --fsync": lambda: ours(preserve_in, "preserve-fsync", "--fsync"),
        }
        if extra_in:
            cases["inject one-block"] = lambda: ours(extra_in[0], "inject-oneblock")
        if args.no_baseline:
            del cases["baseline"]
        for r in range(args.rounds):
            for name, fn in cases.items():
                wall, rss = fn()
                results.setdefault(name, []).append((wall, rss))
                print(f"round {r + 1}: {name:17s} {wall:7.2f} s  {rss:7.1f} MB", flush=True)
        check = subprocess.run(["gzip", "-t", str(out / "inject" / "model.tar.gz")])
        same = (out / "preserve" / "model.tar.gz").read_bytes() == preserve_in.read_bytes()
        print(f"inject output passes gzip -t: {check.returncode == 0}; preserve output == input: {same}")

    med = {name: statistics.median(w for w, _ in v) for name, v in results.items()}
    print(f"\n{'case':17s} {'median s':>9s} {'peak mem MB':>12s}")
    for name, v in results.items():
        print(f"{name:17s} {med[name]:9.2f} {max(r for _, r in v):12.1f}")
    print()
    print(f"inject / gzip -dc   = {med['inject'] / med['gzip -dc']:.2f}   (target <= 0.5)")
    if "baseline" in med:
        print(f"baseline / inject   = {med['baseline'] / med['inject']:.1f}   (target >= 15)")
    print(f"preserve / gzip -dc = {med['preserve'] / med['gzip -dc']:.2f}   (target <= 0.5)")
    print(f"with --fsync: inject / gzip -dc = {med['inject --fsync'] / med['gzip -dc']:.2f}, "
          f"preserve / gzip -dc = {med['preserve --fsync'] / med['gzip -dc']:.2f}")


def filesystem_of(path: Path) -> str:
    """The type and mount point of the filesystem holding ``path`` (from /proc/mounts)."""
    best = ("?", "")
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            _, mount, fstype, *_ = line.split()
            if str(path).startswith(mount) and len(mount) >= len(best[1]):
                best = (fstype, mount)
    except OSError:
        pass
    return f"{best[0]} at {best[1] or '?'}"


if __name__ == "__main__":
    main()
