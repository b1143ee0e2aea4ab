"""`dummy-training repack` as a user meets it: exit codes, one-line errors, logs, atomic output, SIGTERM."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from dummy_training import __version__, cli, contract
from dummy_training.errors import (
    EXIT_INTERRUPTED,
    EXIT_INVALID_INPUT,
    EXIT_NOT_FOUND,
    EXIT_RUNTIME,
    EXIT_UNEXPECTED,
)
from dummy_training.step.report import md_text

HP = b'{"learning_rate": "0.001", "epochs": "3"}'


def make_archive(path: Path, members: dict[str, bytes], *, with_hp: bytes | None = None) -> Path:
    """A small model.tar.gz with the given regular-file members (and a root hyperparameters.json if asked)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        dirinfo = tarfile.TarInfo("model")
        dirinfo.type = tarfile.DIRTYPE
        dirinfo.mode = 0o755
        tar.addfile(dirinfo)
        items = dict(members)
        if with_hp is not None:
            items["hyperparameters.json"] = with_hp
        for name, data in items.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            info.mode = 0o640
            tar.addfile(info, io.BytesIO(data))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return path


MEMBERS = {"model/weights.bin": os.urandom(300_000), "model/config.json": b'{"hidden": 8}',
           "model/hyperparameters.json": b'{"nested": "does not count"}'}


def run_cli(*argv: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dummy_training", *argv], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=120)


def read_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else b"") for m in tar.getmembers()}


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("dummy-training: error:")]


def test_inject(tmp_path: Path) -> None:
    model = make_archive(tmp_path / "in" / "model.tar.gz", MEMBERS)
    (tmp_path / "hp.json").write_bytes(HP)
    res = run_cli("repack", "--model", str(model), "--hyperparameters", str(tmp_path / "hp.json"),
                  "--output-dir", str(tmp_path / "out"), "--result-json", str(tmp_path / "result.json"))
    assert res.returncode == 0, res.stderr
    out = tmp_path / "out" / contract.MODEL_FILENAME
    assert res.stdout.strip() == str(out)
    got = read_members(out)
    assert got["hyperparameters.json"] == HP
    for name, data in MEMBERS.items():
        assert got[name] == data
    summary = json.loads((tmp_path / "result.json").read_text())
    assert summary["decision"] == contract.DECISION_INJECTED
    assert summary["member_count"] == len(MEMBERS) + 2  # the output's: "model/", the members, the injected file
    assert summary["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert summary["dummy_training_version"] == __version__
    assert "[Argument]" in res.stderr and "decision: injected" in res.stderr
    assert "model/weights.bin" in res.stderr  # the member list is logged
    assert os.listdir(tmp_path / "out") == [contract.MODEL_FILENAME]  # no temp file left


def test_report_flag_writes_the_markdown_report(tmp_path: Path) -> None:
    import hashlib

    model = make_archive(tmp_path / "in" / "model.tar.gz", MEMBERS)
    (tmp_path / "hp.json").write_bytes(HP)
    report = tmp_path / "reports" / "r.md"
    res = run_cli("repack", "--model", str(model), "--hyperparameters", str(tmp_path / "hp.json"),
                  "--output-dir", str(tmp_path / "out"), "--report", str(report))
    assert res.returncode == 0, res.stderr
    text = report.read_text()
    assert text.startswith("# dummy-training repack: hyperparameters.json injected")
    assert "**Decision: injected.**" in text
    assert f"`[Argument]` {md_text(tmp_path / 'hp.json')}" in text
    digest = hashlib.sha256((tmp_path / "out" / contract.MODEL_FILENAME).read_bytes()).hexdigest()
    assert f"| sha256 | `{digest}` |" in text
    for name in ("model/", "model/weights.bin", "model/config.json", "model/hyperparameters.json"):
        assert f"| {md_text(name)} |" in text, name
    assert "| **hyperparameters.json** | file, **injected** |" in text
    assert os.listdir(report.parent) == ["r.md"]  # written by rename: no temp file left
    # as a Markdown viewer shows it: the decision first, then one table row per member and the injected file
    import markdown

    page = markdown.markdown(text, extensions=["tables", "fenced_code"])
    assert page.split("\n")[1].startswith("<p><strong>Decision: injected.</strong> The archive has no root")
    members_table = page.rsplit("<tbody>", 1)[1]
    assert members_table.count("<tr>") == 5
    assert "<td>model/weights.bin</td>" in members_table and "<td>file, <strong>injected</strong></td>" in members_table


def test_report_and_result_follow_the_umask_and_agree_on_members_and_sha256(tmp_path: Path) -> None:
    model = make_archive(tmp_path / "model.tar.gz", MEMBERS)
    for umask in (0o022, 0o027):
        out = tmp_path / f"out-{umask:o}"
        res = subprocess.run(
            [sys.executable, "-m", "dummy_training", "repack", "--model", str(model), "--hyperparameters-json",
             '{"a": 1}', "--output-dir", str(out), "--report", str(out / "r.md"), "--result-json",
             str(out / "result.json")], capture_output=True, text=True, timeout=120,
            preexec_fn=lambda u=umask: os.umask(u))
        assert res.returncode == 0, res.stderr
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
        assert modes == dict.fromkeys(("model.tar.gz", "r.md", "result.json"), 0o644 & ~umask)
        summary = json.loads((out / "result.json").read_text())
        text = (out / "r.md").read_text()
        assert f"| Members | {summary['member_count']:,} (" in text and summary["member_count"] == len(MEMBERS) + 2
        assert f"| sha256 | `{summary['sha256']}` |" in text


def test_log_escapes_c0_and_c1_controls_in_member_names(tmp_path: Path) -> None:
    model = make_archive(tmp_path / "model.tar.gz", {"esc\x1b[31mred": b"1", "csi\x9b31mred": b"2",
                                                     "nel\x85x\x7f": b"3"})
    res = run_cli("repack", "--model", str(model), "--hyperparameters-json", "{}", "--output-dir",
                  str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    assert not any(0x7F <= ord(c) < 0xA0 or (ord(c) < 0x20 and c not in "\n") for c in res.stderr)
    for shown in ("esc\\x1b[31mred", "csi\\x9b31mred", "nel\\x85x\\x7f"):
        assert shown in res.stderr, shown


def test_inline_json_and_pretrained_model_path_alias(tmp_path: Path) -> None:
    model = make_archive(tmp_path / "model.tar.gz", MEMBERS)
    res = run_cli("repack", "--pretrained-model-path", str(model), "--hyperparameters-json", '{"a": 1}',
                  "--output-dir", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    assert read_members(tmp_path / "out" / "model.tar.gz")["hyperparameters.json"] == b'{"a": 1}'


def test_preserve_is_byte_identical_and_warns(tmp_path: Path) -> None:
    model = make_archive(tmp_path / "model.tar.gz", MEMBERS, with_hp=b'{"own": true}')
    res = run_cli("repack", "--model", str(model), "--hyperparameters-json", '{"given": 1}',
                  "--output-dir", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out" / "model.tar.gz").read_bytes() == model.read_bytes()
    assert "preserved" in res.stderr
    assert "WARNING" in res.stderr and "ignored" in res.stderr


def test_missing_hyperparameters_exit_1_names_places_and_writes_nothing(tmp_path: Path) -> None:
    model = make_archive(tmp_path / "model.tar.gz", MEMBERS)
    res = run_cli("repack", "--model", str(model), "--output-dir", str(tmp_path / "out"),
                  env={contract.OPT_ML_ROOT_ENV: str(tmp_path / "opt_ml")})
    assert res.returncode == EXIT_NOT_FOUND
    (line,) = error_lines(res.stderr)
    assert "no root hyperparameters.json" in line
    assert str(tmp_path / "opt_ml" / "processing/input/config/hyperparameters.json") in line
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "out" / "model.tar.gz").exists()
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_no_report_when_the_repack_fails(tmp_path: Path) -> None:
    model = make_archive(tmp_path / "model.tar.gz", MEMBERS)
    res = run_cli("repack", "--model", str(model), "--output-dir", str(tmp_path / "out"),
                  "--report", str(tmp_path / "r.md"), env={contract.OPT_ML_ROOT_ENV: str(tmp_path / "opt_ml")})
    assert res.returncode == EXIT_NOT_FOUND
    assert not (tmp_path / "r.md").exists()


def test_missing_model_exit_1(tmp_path: Path) -> None:
    res = run_cli("repack", "--model", str(tmp_path / "nope.tar.gz"), "--output-dir", str(tmp_path / "out"))
    assert res.returncode == EXIT_NOT_FOUND
    assert len(error_lines(res.stderr)) == 1 and "Traceback" not in res.stderr


@pytest.mark.parametrize(("content", "hp"), [
    (b"this is not an archive at all" * 100, HP),
    (b"", HP),
    (None, b"[1, 2, 3]"),
    (None, b"{broken"),
])
def test_invalid_input_exit_2_one_line_no_output(tmp_path: Path, content: bytes | None, hp: bytes) -> None:
    model = tmp_path / "model.tar.gz"
    if content is None:
        make_archive(model, MEMBERS)
    else:
        model.write_bytes(content)
    (tmp_path / "hp.json").write_bytes(hp)
    out = tmp_path / "out"
    res = run_cli("repack", "--model", str(model), "--hyperparameters", str(tmp_path / "hp.json"),
                  "--output-dir", str(out))
    assert res.returncode == EXIT_INVALID_INPUT, res.stderr
    assert len(error_lines(res.stderr)) == 1 and "Traceback" not in res.stderr
    assert not out.exists() or list(out.iterdir()) == []


def test_hostile_member_rejected_and_nothing_written_outside_output(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    work = tmp_path / "work"
    work.mkdir()
    model = work / "model.tar.gz"
    model.write_bytes(buf.getvalue())
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    res = run_cli("repack", "--model", str(model), "--hyperparameters-json", "{}", "--output-dir",
                  str(work / "out"), cwd=work)
    assert res.returncode == EXIT_INVALID_INPUT
    assert "../escape.txt" in error_lines(res.stderr)[0]
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.name != "out")
    assert after == before
    assert not (tmp_path / "escape.txt").exists()


def test_unwritable_output_exit_3(tmp_path: Path) -> None:
    model = make_archive(tmp_path / "model.tar.gz", MEMBERS)
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory should be")
    res = run_cli("repack", "--model", str(model), "--hyperparameters-json", "{}", "--output-dir",
                  str(blocker / "out"))
    assert res.returncode == EXIT_RUNTIME, res.stderr
    assert len(error_lines(res.stderr)) == 1 and "Traceback" not in res.stderr


def test_rerun_replaces_output_and_output_equal_input_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.tar.gz").write_bytes(b"stale")
    model = make_archive(tmp_path / "model.tar.gz", MEMBERS)
    assert run_cli("repack", "--model", str(model), "--hyperparameters-json", "{}", "--output-dir",
                   str(out)).returncode == 0
    assert "hyperparameters.json" in read_members(out / "model.tar.gz")
    res = run_cli("repack", "--model", str(model), "--hyperparameters-json", "{}", "--output-dir", str(tmp_path))
    assert res.returncode == EXIT_INVALID_INPUT and "is the input model" in res.stderr


def test_contract_paths_without_flags(tmp_path: Path) -> None:
    root = tmp_path / "opt_ml"
    make_archive(root / "processing/input/model/model.tar.gz", MEMBERS)
    (root / "processing/input/config").mkdir(parents=True)
    (root / "processing/input/config/hyperparameters.json").write_bytes(HP)
    res = run_cli("repack", env={contract.OPT_ML_ROOT_ENV: str(root)}, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "[Processing Input]" in res.stderr
    got = read_members(root / "processing/output/model/model.tar.gz")
    assert got["hyperparameters.json"] == HP


def test_input_channel_wins_and_is_labelled(tmp_path: Path) -> None:
    root = tmp_path / "opt_ml"
    make_archive(root / "input/data/model_artifacts_input/model.tar.gz", MEMBERS)
    make_archive(root / "code/models/model.tar.gz", {"other": b"x"})
    (root / "code/hyperparams").mkdir(parents=True)
    (root / "code/hyperparams/hyperparameters.json").write_bytes(HP)
    res = run_cli("repack", "--output-dir", str(tmp_path / "out"), "--report", str(tmp_path / "r.md"),
                  env={contract.OPT_ML_ROOT_ENV: str(root)}, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "model: [Input Channel]" in res.stderr and "[SOURCE Fallback]" in res.stderr
    report = (tmp_path / "r.md").read_text()  # the report names where each input was found
    model_at = root / "input/data/model_artifacts_input/model.tar.gz"
    hp_at = root / "code/hyperparams/hyperparameters.json"
    assert f"| model | `[Input Channel]` | {md_text(model_at)} |" in report
    assert f"| hyperparameters | `[SOURCE Fallback]` | {md_text(hp_at)} |" in report
    assert "model/weights.bin" in read_members(tmp_path / "out" / "model.tar.gz")


def test_unexpected_error_exit_4_with_traceback(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture) -> None:
    import dummy_training.step.repack as repack

    def boom(**_kw: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(repack, "run_repack", boom)
    assert cli.main(["repack", "--model", "x"]) == EXIT_UNEXPECTED
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError" in err


SLOW_RUNNER = """
import sys, time
from pathlib import Path
import dummy_training.step.repack as repack
marker = Path(sys.argv[1])
def slow(self, done, total):
    marker.write_text(str(done))
    time.sleep(0.2)
repack.Progress.__call__ = slow
from dummy_training.cli import main
raise SystemExit(main(sys.argv[2:]))
"""


def test_sigterm_leaves_no_partial_output(tmp_path: Path) -> None:
    model = make_archive(tmp_path / "model.tar.gz", {f"model/shard{i}.bin": os.urandom(2_000_000) for i in range(8)})
    marker = tmp_path / "started"
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_RUNNER, str(marker), "repack", "--model", str(model),
                             "--hyperparameters-json", "{}", "--output-dir", str(out)],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.exists(), "the repack never reported progress"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert "interrupted by SIGTERM" in err
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.parametrize(("argv", "env", "durable"), [
    ((), {}, False),
    (("--fsync",), {}, True),
    ((), {contract.FSYNC_ENV: "1"}, True),
], ids=["default", "flag", "env"])
def test_fsync_flag_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: tuple[str, ...],
                                    env: dict[str, str], durable: bool) -> None:
    from dummy_training.ends import local_file

    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(local_file.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    monkeypatch.delenv(contract.FSYNC_ENV, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    model = make_archive(tmp_path / "model.tar.gz", MEMBERS)
    code = cli.main(["repack", "--model", str(model), "--hyperparameters-json", '{"a": 1}',
                     "--output-dir", str(tmp_path / "out"), "--no-progress", *argv])
    assert code == 0
    assert read_members(tmp_path / "out" / "model.tar.gz")["hyperparameters.json"] == b'{"a": 1}'
    assert len(synced) == (2 if durable else 0)  # the file before the rename, the directory after it


@pytest.mark.parametrize("uri", ["s3://bucket/x", "gs://bucket/x", "minio://host/b", "file:///tmp/x"])
def test_output_dir_refuses_a_uri_and_points_at_output_uri(tmp_path: Path, uri: str) -> None:
    """`--output-dir s3://...` once wrote a local ./s3:/bucket/x/model.tar.gz and exited 0."""
    model = make_archive(tmp_path / "model.tar.gz", MEMBERS)
    res = run_cli("repack", "--model", str(model), "--hyperparameters-json", "{}", "--output-dir", uri, cwd=tmp_path)
    assert res.returncode == EXIT_INVALID_INPUT
    assert error_lines(res.stderr) == [f"dummy-training: error: --output-dir takes a local directory, got the URI "
                                       f"{uri!r}: to write to S3 use --output-uri"]
    assert "Traceback" not in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tar.gz"]  # nothing written


def test_a_model_and_no_output_dir_outside_a_job_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    """On a workstation (no job layout under the contract root) the default output, the job's output directory,
    is never created: one line asking for --output-dir, exit 2."""
    root = tmp_path / "opt_ml"  # no job here: nothing under it
    model = make_archive(tmp_path / "in" / "model.tar.gz", MEMBERS)
    before = sorted(tmp_path.rglob("*"))
    res = run_cli("repack", "--model", str(model), "--hyperparameters-json", "{}",
                  env={contract.OPT_ML_ROOT_ENV: str(root)}, cwd=tmp_path)
    assert res.returncode == EXIT_INVALID_INPUT, res.stderr
    line = error_lines(res.stderr)[0]
    assert len(error_lines(res.stderr)) == 1 and "Traceback" not in res.stderr
    assert "--output-dir" in line and str(root) in line
    assert sorted(tmp_path.rglob("*")) == before and not root.exists() and res.stdout == ""


def test_inside_a_job_the_default_output_directory_is_still_used(tmp_path: Path) -> None:
    root = tmp_path / "opt_ml"
    (root / "processing" / "input" / "config").mkdir(parents=True)  # what a processing job lays out
    model = make_archive(tmp_path / "in" / "model.tar.gz", MEMBERS)
    res = run_cli("repack", "--model", str(model), "--hyperparameters-json", "{}",
                  env={contract.OPT_ML_ROOT_ENV: str(root)}, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(root / "processing/output/model/model.tar.gz")
    assert "hyperparameters.json" in read_members(root / "processing/output/model/model.tar.gz")


def test_a_refused_repack_removes_the_directories_it_created_and_only_those(tmp_path: Path) -> None:
    model = make_archive(tmp_path / "model.tar.gz", MEMBERS)  # no root hyperparameters.json: refused, exit 1
    env = {contract.OPT_ML_ROOT_ENV: str(tmp_path / "opt_ml")}
    res = run_cli("repack", "--model", str(model), "--output-dir", str(tmp_path / "new" / "a" / "b"), env=env)
    assert res.returncode == EXIT_NOT_FOUND, res.stderr
    assert not (tmp_path / "new").exists()  # every level it made is gone
    existing = tmp_path / "existing"
    existing.mkdir()
    res = run_cli("repack", "--model", str(model), "--output-dir", str(existing / "sub"), env=env)
    assert res.returncode == EXIT_NOT_FOUND
    assert existing.is_dir() and list(existing.iterdir()) == []  # its own "sub" gone, the given parent kept
    res = run_cli("repack", "--model", str(model), "--output-dir", str(existing), env=env)
    assert res.returncode == EXIT_NOT_FOUND and existing.is_dir()  # a pre-existing --output-dir stays


@pytest.mark.parametrize("flag", ["-q", "--quiet", "-v", "--verbose"])
def test_log_flags_are_accepted_after_the_sub_command(tmp_path: Path, flag: str) -> None:
    make_archive(tmp_path / "model.tar.gz", MEMBERS)  # found in the working directory: the search logs DEBUG lines
    args = ["repack", "--hyperparameters-json", "{}", "--output-dir", str(tmp_path / "o")]
    env = {contract.OPT_ML_ROOT_ENV: str(tmp_path / "opt_ml")}
    plain, after, before = (run_cli(*a, env=env, cwd=tmp_path) for a in (args, [*args, flag], [flag, *args]))
    assert plain.returncode == after.returncode == before.returncode == 0, after.stderr
    quiet = flag in ("-q", "--quiet")
    for res in (after, before):
        info = [line for line in res.stderr.splitlines() if " INFO " in line]
        debug = [line for line in res.stderr.splitlines() if " DEBUG " in line]
        assert (not info) if quiet else (info and debug), res.stderr
    assert " INFO " in plain.stderr and " DEBUG " not in plain.stderr
