"""The parallel scan in a forked child process held to a memory budget.

rapidgzip's memory grows with the compression ratio of what it decodes ahead, and nothing bounds it: measured
here (2 threads, 4 MiB chunks) 150 MB for a 1 GiB tar of fp16 weights (ratio 1.09), 214 MB for fp32 weights
and text (ratio 1.37), 818 MB for text plus a 512 MiB file of zeros, and 2.4 GB for an 18 MB gzip of 4 GiB of
zeros. A highly compressible model, or a gzip bomb, would take the pod down with it, and a decoder thread
inside rapidgzip cannot be stopped from Python. So the scan runs in a forked child whose watchdog thread ends
it (``os._exit``) as soon as its peak RSS passes the budget; the parent then falls back to the single-thread
scanner, whose memory does not depend on the data (about 30 MB). The fallback costs time, never memory.

The child sends ``on_kept``/``on_progress`` events and then the finished ``GzipScan`` (or the engine's error)
over a pipe; the parent copies the kept prefix as usual. If the parent is interrupted it kills the child; if
the parent dies, the kernel kills the child (``PR_SET_PDEATHSIG``). Linux only; elsewhere this returns None and
the caller scans with the single-thread scanner.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, Pipe
from pathlib import Path

from dummy_training.ends.base import ByteSource
from dummy_training.errors import DummyTrainingError

log = logging.getLogger("dummy_training.engine.archive")

#: Memory the whole step may use while the parallel scan runs (MiB). The child's RSS may grow by this minus the
#: parent's RSS at the fork (the interpreter they share: about 40 MB for a local run, 70 MB with boto3) minus
#: MARGIN_MB for what the parent allocates meanwhile; past it, the single-thread scanner takes over.
BUDGET_ENV = "DUMMY_TRAINING_MEMORY_MB"
DEFAULT_BUDGET_MB = 256
MARGIN_MB = 16
#: Below this much room the parallel scan is not even tried.
MIN_GROWTH_MB = 64
#: How often the watchdog looks at the child's peak RSS; decoding zeros, 2 threads add at most ~10 MB meanwhile.
POLL_SECONDS = 0.002

EXIT_OVER_BUDGET = 86
EXIT_CHILD_FAILED = 70
_PR_SET_PDEATHSIG = 1

Scanner = Callable[..., object]


#: The cgroup's own memory limit counts the page cache of what the step reads and writes as well as the
#: interpreter: the scan keeps this much below it.
CGROUP_HEADROOM_MB = 32
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: cgroup v1 writes "no limit" as LONG_MAX rounded down to a page (9223372036854771712); anything this large is none.
_UNLIMITED = 1 << 60


def _read_limit(path: Path) -> int | None:
    try:
        raw = path.read_text().strip()
    except OSError:
        return None
    if not raw.isdigit():  # "max" (v2), or unreadable
        return None
    value = int(raw)
    return value if 0 < value < _UNLIMITED else None


def _own_cgroup_dirs(root: Path, controller_dir: str, cgroup_path: str) -> list[Path]:
    """The directories that may hold this process's limit: its cgroup and every ancestor under the mount (when
    the hierarchy is the host's, e.g. no cgroup namespace), and the mount point itself (what a container sees
    of its own cgroup: runc mounts it there)."""
    base = root / controller_dir if controller_dir else root
    parts = [p for p in cgroup_path.strip("/").split("/") if p and p != ".."]
    dirs = [base.joinpath(*parts[:i]) for i in range(len(parts), 0, -1)]
    return [*dirs, base]


def cgroup_memory_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> int | None:
    """This process's memory limit in bytes from its cgroup (v2 ``memory.max``, v1 ``memory.limit_in_bytes``;
    the smallest of its cgroup and their ancestors); None when there is none or it cannot be read. A pod's memory
    limit is only visible here: /proc/meminfo shows the machine's memory."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    v1_path = v2_path = None
    for line in lines:
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        if fields[0] == "0" and fields[1] == "":
            v2_path = fields[2]
        elif "memory" in fields[1].split(","):
            v1_path = fields[2]
    found: list[int] = []
    if v1_path is not None:
        found += [v for d in _own_cgroup_dirs(root, "memory", v1_path)
                  if (v := _read_limit(d / "memory.limit_in_bytes")) is not None]
    elif (root / "memory.max").exists() or v2_path is not None:
        found += [v for d in _own_cgroup_dirs(root, "", v2_path or "/")
                  if (v := _read_limit(d / "memory.max")) is not None]
    return min(found) if found else None


def limit_bytes() -> int:
    """The step's memory limit while scanning: ``DUMMY_TRAINING_MEMORY_MB`` (default 256 MiB), lowered to the
    cgroup's memory limit (a pod's ``limits.memory``) minus ``CGROUP_HEADROOM_MB`` when that is smaller."""
    raw = os.environ.get(BUDGET_ENV, "").strip()
    mb = int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_BUDGET_MB
    limit = mb << 20
    cgroup = cgroup_memory_limit()
    if cgroup is not None:
        limit = min(limit, cgroup - (CGROUP_HEADROOM_MB << 20))
    return limit


def budget_bytes() -> int:
    """How much the child's RSS may grow: the limit minus this process's RSS now, minus a margin."""
    return limit_bytes() - _current_rss_bytes() - (MARGIN_MB << 20)


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _current_rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return _peak_rss_bytes()


def _watchdog(limit: int) -> None:
    while _peak_rss_bytes() <= limit:
        time.sleep(POLL_SECONDS)
    os._exit(EXIT_OVER_BUDGET)


def _child(send: Connection, scanner: Scanner, source: ByteSource, budget: int, kwargs: dict) -> None:
    """Runs in the forked child; never returns."""
    code = EXIT_CHILD_FAILED
    try:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which kills this child
        limit = _current_rss_bytes() + budget
        threading.Thread(target=_watchdog, args=(limit,), daemon=True).start()
        try:
            scan = scanner(source, on_kept=lambda n: send.send(("kept", n)),
                           on_progress=lambda n: send.send(("progress", n)), **kwargs)
            send.send(("done", scan))
        except DummyTrainingError as exc:
            send.send(("error", exc))
        code = 0
    finally:
        os._exit(code)


def run_in_child(
    scanner: Scanner,
    source: ByteSource,
    *,
    on_kept: Callable[[int], None] | None,
    on_progress: Callable[[int], None] | None,
    budget: int | None = None,
    **kwargs: object,
) -> object | None:
    """``scanner(source, on_kept=..., on_progress=..., **kwargs)`` in a forked child whose RSS may grow by
    ``budget`` bytes. Returns its result, re-raises its DummyTrainingError, or returns None when the child went
    over budget or failed (the caller then scans another way)."""
    if sys.platform != "linux" or not hasattr(os, "fork"):
        return None
    if budget is None:
        budget = budget_bytes()
        if budget < MIN_GROWTH_MB << 20:
            log.info("not enough memory for the parallel scan (limit %d MiB: %s and the cgroup's memory limit; "
                     "%d MiB in use): scanning with the single-thread scanner", limit_bytes() >> 20, BUDGET_ENV,
                     _current_rss_bytes() >> 20)
            return None
    recv, send = Pipe(duplex=False)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        recv.close()
        _child(send, scanner, source, budget, kwargs)
    send.close()
    result: object | None = None
    finished = False
    try:
        while True:
            try:
                kind, value = recv.recv()
            except (EOFError, OSError, ValueError, TypeError, AttributeError, ImportError):
                break  # the child exited (over budget or failed) before sending its result
            if kind == "kept":
                if on_kept is not None:
                    on_kept(value)
            elif kind == "progress":
                if on_progress is not None:
                    on_progress(value)
            elif kind == "error":
                finished = True
                raise value
            else:
                result, finished = value, True
                break
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        raise
    finally:
        recv.close()
        _, status = os.waitpid(pid, 0)
    if finished:
        return result
    code = os.waitstatus_to_exitcode(status)
    if code == EXIT_OVER_BUDGET:
        log.info("parallel scan passed its memory budget of %d MiB (highly compressible data); scanning with "
                 "the single-thread scanner instead (%s and the cgroup's memory limit set the step's limit)",
                 budget >> 20, BUDGET_ENV)
    else:
        log.warning("parallel scan ended unexpectedly (exit status %d); scanning with the single-thread scanner",
                    code)
    return None
