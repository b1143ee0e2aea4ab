"""The real-world corpus (issue 19): model archives written AT TEST TIME by real tar writers and compressors.

Nothing here is a stored archive: each ``Case`` knows how to write its archive into a scratch directory with
the tools a user has (GNU tar in every format, bsdtar, MirBSD pax, busybox tar, Python's tarfile; gzip, pigz,
zopfli, igzip, bgzip, multi-member gzips), from a model tree built on disk (``make_tree``).

- ``make_tree(root, ...)``: a small model: ``model.bin`` (1.2 MB of random bytes: splicing has deflate blocks
  to keep), compressible text, a sub-directory, an empty directory, a symlink, a hard link, a nested
  ``model/hyperparameters.json`` (which does not count), optionally long names (> 100 and > 255 bytes), a
  non-UTF-8 name, a sparse file, xattrs/ACLs, and the root ``hyperparameters.json`` under a given spelling.
- ``CASES`` (external tools; ``pytest -m corpus``) and ``PYTHON_CASES`` (tarfile only; the default suite): every
  case with its id, writer, expected decision (``inject`` / ``preserve``) and the Debian packages it needs.
- ``COMPRESSORS``: name -> (argv-ish function, packages).

A case's archive is ``case.build(workdir) -> Path``; ``TOOL_PACKAGES`` maps each command to its Debian package so
a missing tool fails the test with the package's name (no skip).
"""

from __future__ import annotations

import gzip
import io
import os
import random
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MTIME = 1_700_000_000
HP_MODEL = b'{"epochs": 99, "source": "the model\'s own"}\n'
HP_GIVEN = '{"a": "1"}'

#: command -> Debian package (what .ci/corpus.sh installs)
TOOL_PACKAGES = {
    "tar": "tar", "bsdtar": "libarchive-tools", "pax": "pax", "busybox": "busybox", "gzip": "gzip",
    "pigz": "pigz", "zopfli": "zopfli", "igzip": "isal", "bgzip": "tabix", "setfattr": "attr", "setfacl": "acl",
    "7zz": "7zip", "git": "git", "npm": "npm",
}

#: names long enough to need GNU ``L``/PAX records (> 100 bytes) and more than ustar's prefix holds (> 255)
LONG_DIR = "long-" + "d" * 95
LONG_FILE = "f" * 120 + ".txt"
NON_UTF8 = os.fsdecode(b"caf\xe9-latin1.txt")
#: a deep tree (issue 25): its file's name has a '/' as byte 98, 100, 154, 156, 254 and 256, so written bare or as
#: ./deep/... (2 bytes more) a '/' ends each of the name field (100), ustar's prefix (155) and prefix + '/' + name
#: (256) boundaries in one writer or the other
DEEP_DIR = "/".join(["deep" + "x" * 93, "y", "z" * 53, "y", "w" * 97, "y"])
DEEP_FILE = DEEP_DIR + "/weights.bin"
assert [i + 1 for i, c in enumerate(DEEP_FILE) if c == "/"] == [98, 100, 154, 156, 254, 256]


class ToolMissing(AssertionError):
    pass


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ToolMissing(f"{tool} is not installed: install the Debian package {TOOL_PACKAGES.get(tool, tool)!r} "
                          "(.ci/corpus.sh does)")
    return path


def run(argv: Sequence[str | os.PathLike[str]], *, cwd: Path | None = None, stdin: bytes | None = None,
        env: dict[str, str] | None = None) -> bytes:
    need(str(argv[0]))
    full_env = {**os.environ, "LC_ALL": "C.UTF-8", "TZ": "UTC", **(env or {})}
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, input=stdin, capture_output=True, env=full_env,
                          check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} exited {proc.returncode}: "
                             f"{proc.stderr.decode(errors='replace')[-2000:]}")
    return proc.stdout


# ------------------------------------------------------------------------------------------- model trees
@dataclass(frozen=True)
class Tree:
    """What goes into the model directory."""

    hp: str | None = None  # None, "root" (hyperparameters.json), "hardlink" (aaa-hp.json + a hard link to it)
    long_names: bool = False  # also a deep tree (DEEP_FILE), which needs long names too
    non_utf8: bool = False
    sparse: bool = False
    xattrs: bool = False
    hard_link: bool = True
    small: bool = False  # a few KB in all (the fuzzer's seeds)
    big: bool = False  # ~7 MB compressed: more than one parallel-scan chunk (PARALLEL_READ, 4 MiB) to split


def _touch_all(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), (MTIME, MTIME), follow_symlinks=False)
    os.utime(root, (MTIME, MTIME))


def make_tree(root: Path, tree: Tree) -> list[str]:
    """Write the model tree under ``root``; returns its top-level names (in the order the writers get them)."""
    rng = random.Random(19)
    root.mkdir(parents=True)
    (root / "model.bin").write_bytes(rng.randbytes(3000 if tree.small else 6_000_000 if tree.big else 1_200_000))
    (root / "config.json").write_text('{"layers": 12, "hidden": 768}\n')
    (root / "data").mkdir()
    lines = range(40 if tree.small else 100_000 if tree.big else 8000)
    (root / "data" / "notes.txt").write_text("".join(f"line {i}: the quick brown fox {i * i}\n" for i in lines))
    (root / "data" / "empty").mkdir()
    (root / "model").mkdir()
    (root / "model" / "hyperparameters.json").write_text('{"nested": "does not count"}\n')
    os.symlink("model.bin", root / "latest")
    if tree.hard_link:
        os.link(root / "config.json", root / "data" / "config-copy.json")
    if tree.long_names:
        deep = root / LONG_DIR / LONG_DIR
        deep.mkdir(parents=True)
        (deep / LONG_FILE).write_text("a name longer than 255 bytes\n")
        (root / LONG_DIR / LONG_FILE).write_text("a name longer than 100 bytes\n")
        os.symlink(LONG_FILE, root / LONG_DIR / ("link-" + "l" * 100))
        (root / DEEP_DIR).mkdir(parents=True)
        (root / DEEP_FILE).write_bytes(rng.randbytes(3000))
    if tree.non_utf8:
        (root / NON_UTF8).write_text("latin-1 name\n")
    if tree.sparse:
        with open(root / "sparse.img", "wb") as f:
            f.seek(20000 if tree.small else 1 << 20)
            f.write(b"data in the middle" * 100)
            f.seek(40000 if tree.small else 3 << 20)
            f.write(b"end")
    if tree.hp == "root":
        (root / "hyperparameters.json").write_bytes(HP_MODEL)
    elif tree.hp == "hardlink":
        (root / "aaa-hp.json").write_bytes(HP_MODEL)
        os.link(root / "aaa-hp.json", root / "hyperparameters.json")
    if tree.xattrs:
        run(["setfattr", "-n", "user.comment", "-v", "corpus", root / "model.bin"])
        run(["setfacl", "-m", "u:1234:r", root / "config.json"])
    _touch_all(root)
    names = sorted(os.listdir(root))
    if "aaa-hp.json" in names:  # the regular member first, hyperparameters.json as the hard link to it
        names.remove("aaa-hp.json")
        names.insert(0, "aaa-hp.json")
    return names


# ------------------------------------------------------------------------------------------- compressors
def _gzip(level: int) -> Callable[[Path, Path], None]:
    def compress(tar: Path, out: Path) -> None:
        out.write_bytes(run(["gzip", f"-{level}", "-n", "-c", tar]))
    return compress


def _pigz(*args: str) -> Callable[[Path, Path], None]:
    def compress(tar: Path, out: Path) -> None:
        out.write_bytes(run(["pigz", *args, "-n", "-c", tar]))
    return compress


def _zopfli(tar: Path, out: Path) -> None:
    out.write_bytes(run(["zopfli", "--i5", "-c", tar]))


def _igzip(level: int) -> Callable[[Path, Path], None]:
    def compress(tar: Path, out: Path) -> None:
        out.write_bytes(run(["igzip", f"-{level}", "-n", "-c", tar]))
    return compress


def _bgzip(tar: Path, out: Path) -> None:
    out.write_bytes(run(["bgzip", "-c", tar]))


def _empty_first(tar: Path, out: Path) -> None:
    """``gzip </dev/null > m.gz; gzip -9n -c model.tar >> m.gz``"""
    out.write_bytes(run(["gzip", "-n"], stdin=b"") + run(["gzip", "-9", "-n", "-c", tar]))


def _empty_between(tar: Path, out: Path) -> None:
    data = tar.read_bytes()
    half = len(data) // 2 + 1234  # cut mid-member: the tar stream spans both gzip members
    out.write_bytes(run(["gzip", "-6", "-n"], stdin=data[:half]) + run(["gzip", "-n"], stdin=b"")
                    + run(["gzip", "-6", "-n"], stdin=data[half:]))


def _empty_last(tar: Path, out: Path) -> None:
    out.write_bytes(run(["gzip", "-9", "-n", "-c", tar]) + run(["gzip", "-n"], stdin=b""))


def _plain(tar: Path, out: Path) -> None:
    shutil.copyfile(tar, out)


def _as_written(tar: Path, out: Path) -> None:
    """The writer compressed it itself (npm pack, git archive --format=tar.gz): kept as it is."""
    shutil.copyfile(tar, out)


def _py_gzip(tar: Path, out: Path) -> None:
    out.write_bytes(python_gzip(tar.read_bytes()))


def _py_empty_first(tar: Path, out: Path) -> None:
    out.write_bytes(python_gzip(b"") + python_gzip(tar.read_bytes()))


COMPRESSORS: dict[str, Callable[[Path, Path], None]] = {
    "py-gzip": _py_gzip, "py-multi-empty-first": _py_empty_first,
    "gzip-1": _gzip(1), "gzip-9": _gzip(9), "pigz-i": _pigz("-i"), "pigz-11": _pigz("-11"), "zopfli": _zopfli,
    "igzip-0": _igzip(0), "igzip-1": _igzip(1), "igzip-2": _igzip(2), "igzip-3": _igzip(3), "bgzip": _bgzip,
    "multi-empty-first": _empty_first, "multi-empty-between": _empty_between, "multi-empty-last": _empty_last,
    "plain": _plain, "as-written": _as_written,
}
COMPRESSOR_TOOLS: dict[str, str | None] = {
    "gzip-1": "gzip", "gzip-9": "gzip", "pigz-i": "pigz", "pigz-11": "pigz", "zopfli": "zopfli",
    "igzip-0": "igzip", "igzip-1": "igzip", "igzip-2": "igzip", "igzip-3": "igzip", "bgzip": "bgzip",
    "multi-empty-first": "gzip", "multi-empty-between": "gzip", "multi-empty-last": "gzip",
    "plain": None, "py-gzip": None, "py-multi-empty-first": None, "as-written": None}


# ------------------------------------------------------------------------------------------- tar writers
#: how the members are named: "bare" (model.bin ...), "dot" (-C root . : ./, ./model.bin ...)
def _members(names: list[str], style: str) -> list[str]:
    return ["."] if style == "dot" else names


def gnu_tar(fmt: str, *extra: str, style: str = "bare") -> Callable[[Path, Path, list[str]], None]:
    def write(root: Path, out: Path, names: list[str]) -> None:
        run(["tar", f"--format={fmt}", *extra, "-cf", out, "-C", root, *_members(names, style)])
    return write


def gnu_tar_incremental(root: Path, out: Path, names: list[str]) -> None:
    snar = out.with_suffix(".snar")
    run(["tar", "--format=gnu", f"--listed-incremental={snar}", "-cf", out, "-C", root, "."])


def gnu_tar_listed(spelled: Sequence[str], *extra: str) -> Callable[[Path, Path, list[str]], None]:
    """GNU tar given the member names as spelled (``.//hyperparameters.json``, ...)."""
    def write(root: Path, out: Path, names: list[str]) -> None:
        rest = [n for n in names if n != "hyperparameters.json"]
        run(["tar", "--format=gnu", *extra, "-cf", out, "-C", root, *spelled, *rest])
    return write


def bsdtar(fmt: str, style: str = "bare") -> Callable[[Path, Path, list[str]], None]:
    def write(root: Path, out: Path, names: list[str]) -> None:
        run(["bsdtar", "--format", fmt, "-cf", out, "-C", root, *_members(names, style)])
    return write


def mirbsd_pax(fmt: str, style: str = "bare") -> Callable[[Path, Path, list[str]], None]:
    def write(root: Path, out: Path, names: list[str]) -> None:
        run(["pax", "-w", "-x", fmt, "-f", out.resolve(), *_members(names, style)], cwd=root)
    return write


def busybox_tar(style: str = "bare") -> Callable[[Path, Path, list[str]], None]:
    def write(root: Path, out: Path, names: list[str]) -> None:
        run(["busybox", "tar", "-cf", out.resolve(), *_members(names, style)], cwd=root)
    return write


def sevenzip(root: Path, out: Path, names: list[str]) -> None:
    """7-Zip's tar writer (Debian's 7zip, ``7zz``), symlinks and hard links stored as links."""
    run(["7zz", "a", "-ttar", "-snl", "-snh", "-bd", "-bso0", "-bsp0", out.resolve(), "--", *names], cwd=root)


def npm_pack(root: Path, out: Path, names: list[str]) -> None:
    """``npm pack`` of the model directory as a package: node-tar writes it (every member under ``package/``)
    and gzips it itself; offline, with its cache in the scratch directory."""
    (root / "package.json").write_text('{"name": "dt-model", "version": "1.0.0", "files": ["**/*"]}\n')
    os.utime(root / "package.json", (MTIME, MTIME))
    dest = out.parent / "npm-out"
    dest.mkdir()
    run(["npm", "pack", "--offline", "--silent", "--pack-destination", dest], cwd=root,
        env={"npm_config_cache": str(out.parent / "npm-cache"), "npm_config_update_notifier": "false"})
    (tgz,) = dest.iterdir()
    tgz.rename(out)


def git_archive(fmt: str) -> Callable[[Path, Path, list[str]], None]:
    """``git archive`` of a commit of the model directory (empty directories are not in git); ``fmt`` "tar" or
    "tar.gz" (git's own gzip). Its global PAX header carries the commit id as a ``comment``."""
    def write(root: Path, out: Path, names: list[str]) -> None:
        env = {"GIT_AUTHOR_DATE": f"@{MTIME} +0000", "GIT_COMMITTER_DATE": f"@{MTIME} +0000",
               "GIT_AUTHOR_NAME": "corpus", "GIT_AUTHOR_EMAIL": "corpus@example.invalid",
               "GIT_COMMITTER_NAME": "corpus", "GIT_COMMITTER_EMAIL": "corpus@example.invalid",
               "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
        run(["git", "init", "-q"], cwd=root, env=env)
        run(["git", "add", "-A", "--", *names], cwd=root, env=env)
        run(["git", "commit", "-q", "-m", "model"], cwd=root, env=env)
        run(["git", "archive", f"--format={fmt}", "-o", out.resolve(), "HEAD"], cwd=root, env=env)
    return write


def python_tarfile(fmt: int, style: str = "bare") -> Callable[[Path, Path, list[str]], None]:
    def write(root: Path, out: Path, names: list[str]) -> None:
        with tarfile.open(out, "w", format=fmt) as tf:
            for name in _members(names, style):
                tf.add(root / name, arcname="./" if name == "." and style == "dot" else name)
    return write


# ------------------------------------------------------------------------------------------- cases
@dataclass(frozen=True)
class Case:
    id: str
    writer: str  # "gnu-tar", "bsdtar", "pax", "busybox", "tarfile", "7zz", "npm-pack", "git-archive"
    write: Callable[[Path, Path, list[str]], None]
    tree: Tree = field(default_factory=Tree)
    compressor: str = "gzip-9"
    expect: str = "inject"  # "inject" | "preserve" | "refuse" (exit 2, one line, no output)
    tools: tuple[str, ...] = ()
    #: the readers whose member list the engine's must equal. GNU incremental archives leave tarfile out:
    #: tarfile reads the GNU atime/ctime fields (offsets 345-368, where ustar keeps its prefix) as a name prefix,
    #: so it lists './model.bin' as '14524770400/./model.bin' where GNU tar and libarchive read './model.bin'.
    readers: tuple[str, ...] = ("tarfile", "libarchive")

    def build(self, workdir: Path) -> Path:
        """Write this case's archive under ``workdir`` (a fresh directory) and return its path."""
        for tool in (*self.tools, COMPRESSOR_TOOLS[self.compressor]):
            if tool:
                need(tool)
        root = workdir / "tree"
        names = make_tree(root, self.tree)
        tar = workdir / "model.tar"
        self.write(root, tar, names)
        out = workdir / ("model.tar" if self.compressor == "plain" else "model.tar.gz")
        if self.compressor != "plain":
            COMPRESSORS[self.compressor](tar, out)
            tar.unlink()
        shutil.rmtree(root)
        return out


def _cases() -> list[Case]:
    cases: list[Case] = []
    full = Tree(long_names=True, non_utf8=True)
    short = Tree(non_utf8=True)

    def add(case_id: str, writer: str, write: Callable[[Path, Path, list[str]], None], tree: Tree, *,
            tools: tuple[str, ...], compressor: str = "gzip-9", hp: bool = True) -> None:
        """The case, and (``hp``) its preserve twin with a root hyperparameters.json."""
        cases.append(Case(case_id, writer, write, tree, compressor, "inject", tools))
        if hp:
            cases.append(Case(case_id + "+hp", writer, write, Tree(**{**tree.__dict__, "hp": "root"}), compressor,
                              "preserve", tools))

    # GNU tar, every format, named bare and from "."
    for fmt in ("gnu", "oldgnu", "posix", "ustar", "v7"):
        tree = full if fmt in ("gnu", "oldgnu", "posix") else short
        for style in ("bare", "dot"):
            add(f"gnu-tar-{fmt}-{style}", "gnu-tar", gnu_tar(fmt, style=style), tree, tools=("tar",))
    for fmt in ("gnu", "oldgnu", "posix"):
        add(f"gnu-tar-{fmt}-sparse", "gnu-tar", gnu_tar(fmt, "-S"), Tree(sparse=True), tools=("tar",))
    for version in ("0.0", "0.1", "1.0"):
        add(f"gnu-tar-posix-sparse-{version}", "gnu-tar", gnu_tar("posix", "-S", f"--sparse-version={version}"),
            Tree(sparse=True), tools=("tar",), hp=False)
    add("gnu-tar-posix-xattrs-acls", "gnu-tar", gnu_tar("posix", "--xattrs", "--acls"), Tree(xattrs=True),
        tools=("tar", "setfattr", "setfacl"))
    add("gnu-tar-gnu-label", "gnu-tar", gnu_tar("gnu", "-V", "model volume 1"), short, tools=("tar",))
    # with a root hyperparameters.json: refused, since tarfile would put it under '<atime>/./' (another root
    # decision than GNU tar's and bsdtar's; the engine's rule since eeefff1)
    for hp in (None, "root"):
        cases.append(Case("gnu-tar-incremental" + ("+hp" if hp else ""), "gnu-tar", gnu_tar_incremental,
                          Tree(non_utf8=True, hp=hp), "gzip-9", "refuse" if hp else "inject", ("tar",),
                          readers=("libarchive",)))
    for factor in ("1", "64"):
        add(f"gnu-tar-gnu-b{factor}", "gnu-tar", gnu_tar("gnu", "-b", factor), short, tools=("tar",), hp=False)
    add("gnu-tar-posix-global-owner", "gnu-tar",
        gnu_tar("posix", "--pax-option=uname=builder,gname=builder,uid=1234,gid=1234"), short, tools=("tar",))
    add("gnu-tar-posix-global-mtime", "gnu-tar", gnu_tar("posix", "--pax-option=mtime:=1600000000"), short,
        tools=("tar",), hp=False)
    add("gnu-tar-sorted-owner", "gnu-tar", gnu_tar("gnu", "--sort=name", "--owner=0", "--group=0",
                                                   "--numeric-owner", "--mtime=@1700000000"), full, tools=("tar",))
    # the root hyperparameters.json as extractors resolve it
    for label, spelled in (("dot", "./hyperparameters.json"), ("dotslash", ".//hyperparameters.json"),
                           ("dotdotdot", "./././hyperparameters.json")):
        cases.append(Case(f"gnu-tar-hp-{label}", "gnu-tar", gnu_tar_listed([spelled]), Tree(hp="root"),
                          "gzip-9", "preserve", ("tar",)))
    cases.append(Case("gnu-tar-hp-hardlink", "gnu-tar", gnu_tar("gnu", "--sort=name"), Tree(hp="hardlink"),
                      "gzip-9", "preserve", ("tar",)))
    cases.append(Case("gnu-tar-hp-dot-posix", "gnu-tar", gnu_tar("posix", style="dot"), Tree(hp="root"),
                      "gzip-9", "preserve", ("tar",)))
    # bsdtar
    for fmt in ("pax", "ustar", "gnutar", "v7"):
        tree = full if fmt in ("pax", "gnutar") else short
        for style in ("bare", "dot"):
            add(f"bsdtar-{fmt}-{style}", "bsdtar", bsdtar(fmt, style), tree, tools=("bsdtar",))
    # MirBSD pax
    for fmt in ("ustar", "tar"):
        for style in ("bare", "dot"):
            add(f"pax-{fmt}-{style}", "pax", mirbsd_pax(fmt, style), short, tools=("pax",))
    # busybox
    for style in ("bare", "dot"):
        add(f"busybox-{style}", "busybox", busybox_tar(style), short, tools=("busybox",))
    # every compressor over one GNU tar and one bsdtar archive
    for comp in COMPRESSORS:
        if comp in ("gzip-9", "py-gzip", "py-multi-empty-first", "as-written"):
            continue
        add(f"gnu-tar-posix-{comp}", "gnu-tar", gnu_tar("posix"), full, tools=("tar",), compressor=comp,
            hp=comp in ("plain", "multi-empty-first", "pigz-i", "igzip-0", "bgzip"))
        add(f"bsdtar-pax-{comp}", "bsdtar", bsdtar("pax", "dot"), short, tools=("bsdtar",), compressor=comp,
            hp=False)
    # 7-Zip, npm pack (node-tar, every member under package/: its hyperparameters.json is never at the root),
    # git archive (a global PAX comment with the commit id; no empty directories)
    add("7zz-bare", "7zz", sevenzip, full, tools=("7zz",))
    add("7zz-short", "7zz", sevenzip, short, tools=("7zz",), hp=False)
    add("7zz-pigz", "7zz", sevenzip, full, tools=("7zz",), compressor="pigz-11", hp=False)
    utf8 = Tree(long_names=True)  # npm cannot lstat a name that is not UTF-8 (ENOENT)
    cases.append(Case("npm-pack", "npm-pack", npm_pack, utf8, "as-written", "inject", ("npm",)))
    cases.append(Case("npm-pack+hp-in-package", "npm-pack", npm_pack, Tree(long_names=True, hp="root"),
                      "as-written", "inject", ("npm",)))
    add("git-archive-tar", "git-archive", git_archive("tar"), full, tools=("git",))
    add("git-archive-tgz", "git-archive", git_archive("tar.gz"), full, tools=("git",), compressor="as-written")
    add("git-archive-short", "git-archive", git_archive("tar"), short, tools=("git",), hp=False)
    # bigger than one parallel-scan chunk: the parallel scanner really splits (issue 19: a leading empty gzip
    # member and an old GNU sparse re-encode gave other bytes with two threads)
    big = Tree(big=True)
    add("gnu-tar-posix-big", "gnu-tar", gnu_tar("posix"), big, tools=("tar",))
    for comp in ("multi-empty-first", "pigz-11", "igzip-1"):
        add(f"gnu-tar-posix-big-{comp}", "gnu-tar", gnu_tar("posix"), big, tools=("tar",), compressor=comp,
            hp=comp == "multi-empty-first")
    add("gnu-tar-oldgnu-sparse-big", "gnu-tar", gnu_tar("oldgnu", "-S"), Tree(big=True, sparse=True),
        tools=("tar",), hp=False)
    cases.append(Case("gnu-tar-oldgnu-sparse-multi-empty-first", "gnu-tar", gnu_tar("oldgnu", "-S"),
                      Tree(sparse=True), "multi-empty-first", "inject", ("tar",)))
    cases.append(Case("gnu-tar-oldgnu-sparse-plain", "gnu-tar", gnu_tar("oldgnu", "-S"), Tree(sparse=True),
                      "plain", "inject", ("tar",)))
    return cases


def _python_cases() -> list[Case]:
    cases = []
    for label, fmt in (("ustar", tarfile.USTAR_FORMAT), ("gnu", tarfile.GNU_FORMAT), ("pax", tarfile.PAX_FORMAT)):
        tree = Tree(long_names=fmt != tarfile.USTAR_FORMAT, non_utf8=True)
        for style, comp, hp in (("bare", "py-gzip", None), ("bare", "py-gzip", "root"), ("dot", "py-gzip", None),
                                ("dot", "py-gzip", "root"), ("dot", "py-multi-empty-first", None),
                                ("bare", "plain", None), ("dot", "plain", "root")):
            cases.append(Case(f"tarfile-{label}-{style}-{comp}" + ("+hp" if hp else ""), "tarfile",
                              python_tarfile(fmt, style), Tree(**{**tree.__dict__, "hp": hp}),
                              comp, "preserve" if hp else "inject", ()))
    return cases


CASES = _cases()
PYTHON_CASES = _python_cases()


def python_gzip(data: bytes, level: int = 9) -> bytes:
    """gzip without a time or a name (the Python-only cases must not need the gzip command either)."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=level, mtime=0, filename="") as f:
        f.write(data)
    return buf.getvalue()
