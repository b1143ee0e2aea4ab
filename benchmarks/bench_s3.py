#!/usr/bin/env python
"""S3-to-S3 repack benchmark (run by hand, not in CI) on a local moto server.

usage: python benchmarks/bench_s3.py [--sizes 64,512,1024] [--small-files 2000] [--no-sdk] [--hp-first]

For each model size (MiB of fp16-like weights, built and cached by ``bench_repack.prepare``: ``tar czf``, gzip -6),
the model is put on a moto S3 server running in this process, then these run one after the other, each as its
own process so its wall time and peak RSS are its own:

  download   a plain parallel download of the object to /dev/null (boto3 download_fileobj: 8 MiB ranged
             GETs, 10 threads; what any S3 tool needs at least to read the model once)
  inject     dummy-training repack --model s3://... --output-uri s3://... (no hyperparameters.json inside)
  preserve   the same on the archive that already has one (as its last member, where ``tar czf`` put it)
  preserve-1st  (with --hp-first) the same with hyperparameters.json as the first member: the scan knows at
             once that the output is the whole object, so no UploadPartCopy is started for a CopyObject to
             replace
  sdk        SageMaker SDK style: download to disk, extract, add hyperparameters.json, tar "w:gz" (level 9),
             multipart upload

"publish s" is the time our run spent waiting for the sink to publish after the scan: the last UploadPartCopy
parts and CompleteMultipartUpload (inject) or the CopyObject (preserve). On S3 that work happens inside S3; on
moto it is the server copying and hashing the object on the same CPUs the scan uses, so the report also gives
the ratio before publishing.

Uploaded bytes are what left the client: for our runs the sink's count of UploadPart/PutObject bodies, for
the SDK style the size of the object it uploads. Targets: inject and preserve each <= 1.5x the download,
uploaded <= 6 MiB, peak RSS <= 256 MB.

moto is patched here (in this process only) so that a ranged GET or UploadPartCopy slices a cached copy of
the object instead of reading the whole object from its spool file for every request, as a real store does;
every client below benefits equally.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
MiB = 1 << 20
BUCKET = "bench-s3"
HP = json.dumps({"epochs": 3, "learning_rate": 0.001})

DOWNLOAD = r"""
import sys, boto3
from boto3.s3.transfer import TransferConfig
s3 = boto3.client("s3", endpoint_url=sys.argv[1])
with open("/dev/null", "wb") as f:
    s3.download_fileobj(sys.argv[2], sys.argv[3], f, Config=TransferConfig(max_concurrency=10))
"""

SDK_STYLE = r"""
import json, os, shutil, sys, tarfile, tempfile, boto3
endpoint, bucket, key, out_key, hp = sys.argv[1:6]
s3 = boto3.client("s3", endpoint_url=endpoint)
with tempfile.TemporaryDirectory() as tmp:
    local = os.path.join(tmp, "model.tar.gz")
    s3.download_file(bucket, key, local)
    src = os.path.join(tmp, "src")
    with tarfile.open(local, "r:gz") as tf:
        tf.extractall(src, filter="fully_trusted")
    with open(os.path.join(src, "hyperparameters.json"), "w") as f:
        f.write(hp)
    out = os.path.join(tmp, "out.tar.gz")
    with tarfile.open(out, "w:gz") as tf:
        for name in sorted(os.listdir(src)):
            tf.add(os.path.join(src, name), arcname=name)
    s3.upload_file(out, bucket, out_key)
    print(json.dumps({"bytes_written": os.path.getsize(out)}))
"""


def patch_moto() -> None:
    from moto.s3 import models

    prop = models.FakeKey.value
    fget, fset = prop.fget, prop.fset

    def get(self):  # noqa: ANN001, ANN202
        cached = self.__dict__.get("_bench_value")
        if cached is None:
            cached = fget(self)
            self.__dict__["_bench_value"] = cached
        return cached

    def put(self, value):  # noqa: ANN001, ANN202
        self.__dict__.pop("_bench_value", None)
        fset(self, value)

    models.FakeKey.value = property(get, put)


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak memory (MB: PSS summed over the process tree, sampled every 20 ms, since the parallel
    scan runs in a child process) and stdout of one command."""
    from bench_repack import _tree_rss_kib

    with tempfile.TemporaryFile("w+") as out:
        peak = [0]
        done = threading.Event()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, env=env, cwd=REPO, text=True)

        def sample() -> None:
            while not done.wait(0.02):
                peak[0] = max(peak[0], _tree_rss_kib(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, stderr = proc.communicate()
        wall = time.perf_counter() - t0
        done.set()
        sampler.join()
        if proc.returncode != 0:
            raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{stderr}")
        out.seek(0)
        return wall, peak[0] / 1024, out.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="64,512,1024", help="model sizes in MiB, comma-separated")
    parser.add_argument("--small-files", type=int, default=2000)
    parser.add_argument("--no-sdk", action="store_true", help="skip the (slow) SDK-style baseline")
    parser.add_argument("--hp-first", action="store_true", help="add preserve-1st: hyperparameters.json first")
    args = parser.parse_args()

    from bench_repack import prepare
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", str(64 * MiB))
    patch_moto()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1", "PYTHONPATH": str(REPO / "container")}
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        env.pop(name, None)
    os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")})
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    import boto3
    from boto3.s3.transfer import TransferConfig

    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket=BUCKET)
    rows = []
    try:
        for size in [int(s) for s in args.sizes.split(",")]:
            inject_path, preserve_path, _ = prepare(size, args.small_files)
            cfg = TransferConfig(multipart_chunksize=64 * MiB)
            s3.upload_file(str(inject_path), BUCKET, f"{size}/model.tar.gz", Config=cfg)
            s3.upload_file(str(preserve_path), BUCKET, f"{size}/hp/model.tar.gz", Config=cfg)
            cases = [("inject", f"{size}/model.tar.gz"), ("preserve", f"{size}/hp/model.tar.gz")]
            if args.hp_first:
                s3.upload_file(str(hp_first(inject_path)), BUCKET, f"{size}/hp1/model.tar.gz", Config=cfg)
                cases.append(("preserve-1st", f"{size}/hp1/model.tar.gz"))
            for _, key in cases:  # warm moto's cache for everyone
                s3.get_object(Bucket=BUCKET, Key=key, Range="bytes=0-0")["Body"].read()
            compressed = inject_path.stat().st_size
            py = sys.executable
            results = {}
            download = run([py, "-c", DOWNLOAD, endpoint, BUCKET, f"{size}/model.tar.gz"], env)
            results["download"] = (download[0], download[1], 0, 0.0)
            for case, key in cases:
                with tempfile.NamedTemporaryFile(suffix=".json") as result:
                    wall, rss, _ = run([py, "-m", "dummy_training", "-q", "repack", "--model", f"s3://{BUCKET}/{key}",
                                        "--hyperparameters-json", HP, "--output-uri", f"s3://{BUCKET}/out/{case}/{size}/",
                                        "--endpoint-url", endpoint, "--no-progress", "--result-json", result.name], env)
                    summary = json.loads(Path(result.name).read_text())
                results[case] = (wall, rss, summary["bytes_written"], summary["publish_seconds"])
                print(f"  {size} MiB {case}: scanned with {summary['scanner']}", flush=True)
                assert summary["decision"] == ("injected" if case == "inject" else "preserved"), summary
            if not args.no_sdk:
                wall, rss, out = run([py, "-c", SDK_STYLE, endpoint, BUCKET, f"{size}/model.tar.gz",
                                      f"out/sdk/{size}/model.tar.gz", HP], env)
                results["sdk"] = (wall, rss, json.loads(out)["bytes_written"], 0.0)
            rows.append((size, compressed, results))
            # free moto's memory before the next size
            for key in [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]:
                s3.delete_object(Bucket=BUCKET, Key=key)
            report(rows[-1:])
    finally:
        server.stop()
    print()
    print("=" * 100)
    report(rows)


def hp_first(inject_path: Path) -> Path:
    """The inject archive with a root hyperparameters.json prepended as its first member (gzip -6), built once."""
    out = inject_path.with_name(inject_path.name.replace(".tar.gz", "-hpfirst.tar.gz"))
    if not out.exists():
        import gzip

        from dummy_training.engine.splice import tar_member

        print(f"building {out} ...", file=sys.stderr)
        with open(str(out) + ".part", "wb") as dst:
            gz = subprocess.Popen(["gzip", "-6", "-n", "-c"], stdin=subprocess.PIPE, stdout=dst)
            assert gz.stdin is not None
            gz.stdin.write(tar_member(HP.encode(), mtime=0))
            with gzip.open(inject_path, "rb") as src:
                while chunk := src.read(4 * MiB):
                    gz.stdin.write(chunk)
            gz.stdin.close()
            if gz.wait() != 0:
                raise SystemExit("gzip failed")
        os.replace(str(out) + ".part", out)
    return out


def report(rows: list) -> None:
    print(f"{'model':>9} {'object':>9} | {'case':<12} {'wall s':>7} {'x dl':>6} {'publish s':>9} "
          f"{'uploaded':>13} {'peak mem':>9}")
    for size, compressed, results in rows:
        download = results["download"][0]
        for case, (wall, rss, uploaded, publish) in results.items():
            print(f"{size:>5} MiB {compressed / MiB:>5.0f} MiB | {case:<12} {wall:>7.2f} {wall / download:>6.2f} "
                  f"{publish:>9.2f} {uploaded / 1024:>9.1f} KiB {rss:>6.0f} MB")
        checks = []
        for case in [c for c in ("inject", "preserve", "preserve-1st") if c in results]:
            wall, rss, uploaded, publish = results[case]
            fast = "ok" if wall <= 1.5 * download else "MISS"
            checks.append(f"{case}: {wall / download:.2f}x download (<= 1.5 {fast}), "
                          f"uploaded {uploaded / 1024:.1f} KiB (<= 6 MiB {'ok' if uploaded <= 6 * MiB else 'MISS'}), "
                          f"memory {rss:.0f} MB (<= 256 {'ok' if rss <= 256 else 'MISS'}); "
                          f"{(wall - publish) / download:.2f}x download before publishing")
        print("   " + "\n   ".join(checks))


if __name__ == "__main__":
    main()
