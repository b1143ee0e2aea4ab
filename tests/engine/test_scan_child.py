"""The parallel scan in a forked child under a memory budget: events, results, errors, budget and interruption."""

from __future__ import annotations

import gzip
import os
import signal
import time
from pathlib import Path

import pytest
from archives import build_tar, file, make_model_archive
from engine_helpers import LogLines, members, repack_bytes

from dummy_training.ends.local_file import LocalFileSource
from dummy_training.engine import archive as engine
from dummy_training.engine import scan_child
from dummy_training.engine.scan_child import run_in_child
from dummy_training.errors import Interrupted, InvalidInputError

NEW_HP = b'{"epochs": "3"}'


@pytest.fixture(autouse=True)
def _parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "_parallel_worthwhile", lambda: True)


def _source(tmp_path: Path, data: bytes = b"x" * 100) -> LocalFileSource:
    path = tmp_path / "in.bin"
    path.write_bytes(data)
    return LocalFileSource(path)


def test_events_and_result_come_back_from_the_child(tmp_path: Path) -> None:
    def scanner(source: LocalFileSource, *, on_kept, on_progress, factor: int):  # noqa: ANN001, ANN202
        on_progress(10)
        on_kept(5)
        on_kept(7)
        return {"pid": os.getpid(), "size": source.size * factor}

    kept: list[int] = []
    progress: list[int] = []
    with _source(tmp_path) as src:
        result = run_in_child(scanner, src, on_kept=kept.append, on_progress=progress.append, factor=3)
    assert isinstance(result, dict)
    assert result["size"] == 300
    assert result["pid"] != os.getpid()  # it ran in another process
    assert kept == [5, 7] and progress == [10]


def test_the_engines_errors_are_raised_in_the_parent(tmp_path: Path) -> None:
    def scanner(source: LocalFileSource, **_: object) -> None:
        raise InvalidInputError("member 'evil' escapes the archive root")

    with _source(tmp_path) as src, pytest.raises(InvalidInputError, match="escapes the archive root"):
        run_in_child(scanner, src, on_kept=None, on_progress=None)


def test_a_child_that_dies_means_none_and_a_warning(tmp_path: Path, logged: LogLines) -> None:
    def scanner(source: LocalFileSource, *, on_kept, **_: object) -> None:  # noqa: ANN001
        on_kept(1)
        os._exit(3)

    with _source(tmp_path) as src:
        assert run_in_child(scanner, src, on_kept=lambda n: None, on_progress=None) is None
    assert "ended unexpectedly (exit status 3)" in logged.text


def test_going_over_the_budget_ends_the_child(tmp_path: Path, logged: LogLines) -> None:
    def scanner(source: LocalFileSource, **_: object) -> bytes:
        hog = []
        for _ in range(64):  # up to 256 MiB, touched, in 4 MiB steps
            hog.append(bytearray(os.urandom(16)) * (1 << 18))
            time.sleep(0.005)
        return b"never"

    with _source(tmp_path) as src:
        assert run_in_child(scanner, src, on_kept=None, on_progress=None, budget=16 << 20) is None
    assert "memory budget of 16 MiB" in logged.text


def test_an_interrupted_parent_kills_the_child(tmp_path: Path) -> None:
    child: list[int] = []

    def scanner(source: LocalFileSource, *, on_kept, **_: object) -> None:  # noqa: ANN001
        on_kept(os.getpid())
        time.sleep(60)

    def interrupt(pid: int) -> None:
        child.append(pid)
        raise Interrupted("interrupted by SIGTERM")

    started = time.monotonic()
    with _source(tmp_path) as src, pytest.raises(Interrupted):
        run_in_child(scanner, src, on_kept=interrupt, on_progress=None)
    assert time.monotonic() - started < 30
    with pytest.raises(ProcessLookupError):  # killed and reaped: no process, no zombie
        os.kill(child[0], 0)


def test_budget_is_the_limit_minus_what_this_process_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scan_child, "cgroup_memory_limit", lambda: None)  # whatever the machine's cgroup says
    monkeypatch.delenv(scan_child.BUDGET_ENV)
    assert scan_child.limit_bytes() == scan_child.DEFAULT_BUDGET_MB << 20
    monkeypatch.setenv(scan_child.BUDGET_ENV, "lots")
    assert scan_child.limit_bytes() == scan_child.DEFAULT_BUDGET_MB << 20
    monkeypatch.setenv(scan_child.BUDGET_ENV, "3000")
    held = scan_child._current_rss_bytes()
    budget = scan_child.budget_bytes()
    assert abs(budget - ((3000 << 20) - held - (scan_child.MARGIN_MB << 20))) < 8 << 20


def test_no_parallel_scan_without_room(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logged: LogLines) -> None:
    """pytest's own RSS is well past 100 MiB: with a 100 MiB limit there is no room for the child at all."""
    monkeypatch.setenv(scan_child.BUDGET_ENV, "100")
    data = make_model_archive(weights_size=500_000)
    result, _ = repack_bytes(data, tmp_path, NEW_HP)
    assert result.scanner in ("zlib-ng", "zlib")
    assert "not enough memory for the parallel scan" in logged.text


def _compressible_archive() -> bytes:
    """About 1000:1 where the zeros are: the kind of input that makes rapidgzip's memory explode."""
    tar = build_tar([file("tokenizer.json", b'{"vocab": 1}'), file("zeros.bin", bytes(160 << 20)),
                     file("weights.bin", os.urandom(200_000))])
    return gzip.compress(tar, 6)


def test_engine_falls_back_to_the_single_thread_scanner_over_budget(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   logged: LogLines) -> None:
    data = _compressible_archive()
    held = scan_child._current_rss_bytes() >> 20
    monkeypatch.setenv(scan_child.BUDGET_ENV, str(held + scan_child.MARGIN_MB + scan_child.MIN_GROWTH_MB + 8))
    result, out = repack_bytes(data, tmp_path / "small", NEW_HP)
    assert "parallel scan passed its memory budget" in logged.text
    assert result.scanner in ("zlib-ng", "zlib") and result.method == "splice"
    assert members(out.read_bytes())[:-1] == members(data)
    monkeypatch.setenv(scan_child.BUDGET_ENV, "4096")
    roomy, out2 = repack_bytes(data, tmp_path / "roomy", NEW_HP)
    assert roomy.scanner == "rapidgzip"
    assert out2.read_bytes() == out.read_bytes()  # the same bytes whichever scanner decided


def test_engine_uses_the_parallel_scanner_for_an_ordinary_archive(tmp_path: Path) -> None:
    result, _ = repack_bytes(make_model_archive(weights_size=2_000_000), tmp_path, NEW_HP)
    assert result.scanner == "rapidgzip"


def test_sigterm_handler_is_reset_in_the_child(tmp_path: Path) -> None:
    def scanner(source: LocalFileSource, **_: object) -> object:
        return signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)

    previous = signal.signal(signal.SIGTERM, lambda *a: None)
    try:
        with _source(tmp_path) as src:
            got = run_in_child(scanner, src, on_kept=None, on_progress=None)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert got == (signal.SIG_DFL, signal.SIG_IGN)


# ---------------------------------------------------------------------------------------------- cgroup limits
V1_UNLIMITED = "9223372036854771712\n"


def _cgroup_tree(tmp_path: Path, proc_cgroup: str, files: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(proc_cgroup)
    return root, proc


def test_cgroup_v1_limit_of_a_container_is_read_at_the_mount(tmp_path: Path) -> None:
    """In a pod on a v1 hierarchy (no cgroup namespace) /proc/self/cgroup names the host's path, which does not
    exist in the container: runc mounted the pod's own cgroup at /sys/fs/cgroup/memory."""
    root, proc = _cgroup_tree(tmp_path, "4:memory:/kubepods/burstable/pod1/abc\n2:cpu,cpuacct:/kubepods\n0::/\n",
                              {"memory/memory.limit_in_bytes": f"{200 << 20}\n"})
    assert scan_child.cgroup_memory_limit(root, proc) == 200 << 20


def test_cgroup_v1_smallest_limit_of_the_cgroup_and_its_ancestors(tmp_path: Path) -> None:
    root, proc = _cgroup_tree(tmp_path, "4:memory:/a/b\n", {
        "memory/memory.limit_in_bytes": V1_UNLIMITED,
        "memory/a/memory.limit_in_bytes": f"{300 << 20}\n",
        "memory/a/b/memory.limit_in_bytes": V1_UNLIMITED,
    })
    assert scan_child.cgroup_memory_limit(root, proc) == 300 << 20


def test_cgroup_v1_unlimited_is_none(tmp_path: Path) -> None:
    root, proc = _cgroup_tree(tmp_path, "4:memory:/\n", {"memory/memory.limit_in_bytes": V1_UNLIMITED})
    assert scan_child.cgroup_memory_limit(root, proc) is None


def test_cgroup_v2_memory_max(tmp_path: Path) -> None:
    root, proc = _cgroup_tree(tmp_path, "0::/\n", {"memory.max": f"{512 << 20}\n"})
    assert scan_child.cgroup_memory_limit(root, proc) == 512 << 20
    root, proc = _cgroup_tree(tmp_path / "nested", "0::/kubepods/pod1/abc\n", {
        "memory.max": "max\n", "kubepods/pod1/memory.max": f"{128 << 20}\n", "kubepods/pod1/abc/memory.max": "max\n"})
    assert scan_child.cgroup_memory_limit(root, proc) == 128 << 20


def test_cgroup_v2_max_and_no_cgroup_at_all_are_none(tmp_path: Path) -> None:
    root, proc = _cgroup_tree(tmp_path, "0::/\n", {"memory.max": "max\n"})
    assert scan_child.cgroup_memory_limit(root, proc) is None
    assert scan_child.cgroup_memory_limit(tmp_path / "none", tmp_path / "no-proc") is None


def test_the_limit_is_the_smaller_of_the_env_and_the_cgroup_minus_headroom(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(scan_child.BUDGET_ENV, "256")
    monkeypatch.setattr(scan_child, "cgroup_memory_limit", lambda: 200 << 20)
    assert scan_child.limit_bytes() == (200 - scan_child.CGROUP_HEADROOM_MB) << 20
    monkeypatch.setattr(scan_child, "cgroup_memory_limit", lambda: 2 << 30)
    assert scan_child.limit_bytes() == 256 << 20
    monkeypatch.setattr(scan_child, "cgroup_memory_limit", lambda: None)
    assert scan_child.limit_bytes() == 256 << 20
