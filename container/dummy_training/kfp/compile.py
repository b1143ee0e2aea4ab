"""`dummy-training compile`: the component and pipeline YAML (and the generated parts of their docs) from Python.

Two uses:
- **For your registry**, from any install (the definitions ship in the package, no checkout needed):
  ``dummy-training compile --image <registry>/dummy-training:<tag> --output-dir DIR`` writes
  ``DIR/components/<name>/component.yaml`` and ``DIR/pipelines/<stem>.yaml`` naming your image.
- **In the checkout** (contributors): ``dummy-training compile`` rewrites the tracked files (YAML, each
  component's ``metadata.yaml``, the READMEs' generated blocks) and ``--check`` compares them with a fresh
  compile (CI's drift test).

Discovery, no registry:
- components: every module of ``dummy_training.kfp.components`` whose name does not start with ``_`` is
  imported; its ``COMPONENTS`` dict (folder name -> component) gives ``components/<name>/component.yaml``, and
  its ``METADATA`` dict (folder name -> ``ComponentInfo``) ``components/<name>/metadata.yaml``.
- pipelines: every module of ``dummy_training.kfp.pipelines`` whose name does not start with ``_`` is imported;
  its ``PIPELINE`` (a ``@dsl.pipeline`` function) gives ``pipelines/<stem>.yaml``. A copy of each compiled
  pipeline is also written into the package (``dummy_training/kfp/data/pipelines/``) so ``dummy-training demo``
  finds it in any install.

The output is deterministic (same sources, same kfp version, same image -> same bytes); ``--check`` compiles
into memory and fails (exit 1) listing every file that differs from a fresh compile. The comparison
(``normalized``) ignores the kfp patch release recorded in ``sdkVersion: kfp-2.17.<patch>``: any kfp of the
pinned minor release gives the same YAML otherwise, so a YAML differing only there is up to date (and left as it
is); a file that is written records the real version. Also runnable as ``python -m dummy_training compile``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import pkgutil
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from dummy_training.errors import EXIT_OK, DummyTrainingError, InvalidInputError, MissingExtraError, RuntimeIOError

log = logging.getLogger("dummy_training.kfp.compile")

COMPONENT_FILE = "component.yaml"
#: Where the package's copy of the compiled pipelines lives, relative to the repository root.
PACKAGE_PIPELINES_DIR = Path("container") / "dummy_training" / "kfp" / "data" / "pipelines"
METADATA_FILE = "metadata.yaml"
COMPONENTS_PACKAGE = "dummy_training.kfp.components"
PIPELINES_PACKAGE = "dummy_training.kfp.pipelines"


class DriftError(DummyTrainingError):
    """Committed YAML differs from a fresh compile."""

    exit_code = 1


@dataclass(frozen=True)
class Target:
    """One YAML to write: where, and how to compile it."""

    path: Path  # relative to the repository root
    source: str  # "module:NAME" for logs and errors
    obj: Any  # a component or a pipeline function


def find_root(start: Path | None = None) -> Path:
    """The repository root: the nearest parent of ``start`` (default cwd) holding components/ and pipelines/,
    else the checkout this package was imported from (editable install)."""
    candidates = [start or Path.cwd()]
    candidates += list(candidates[0].resolve().parents)
    candidates.append(Path(__file__).resolve().parents[3])  # container/dummy_training/kfp/compile.py -> the checkout
    for c in candidates:
        if (c / "components").is_dir() and (c / "pipelines").is_dir() and (c / "container").is_dir():
            return c
    raise InvalidInputError("cannot find the repository root (a directory with components/, pipelines/ and "
                            "container/): to compile for your registry from an install, pass --output-dir DIR "
                            "(with --image IMAGE); to rewrite or --check the tracked files, run from the checkout "
                            "or pass --root")


def component_modules(reload: bool = False) -> list[ModuleType]:
    """Every component module of ``dummy_training.kfp.components`` (name order), imported.

    With ``reload`` the whole package is imported afresh (the image is read at import time), so modules that
    import each other all see the new image whatever their import order.
    """
    return _package_modules(COMPONENTS_PACKAGE, reload)


def _package_modules(prefix: str, reload: bool = False) -> list[ModuleType]:
    if reload:  # the pipelines import the components: both afresh
        for name in [n for n in sys.modules if any(n == p or n.startswith(p + ".") for p in
                                                    (COMPONENTS_PACKAGE, PIPELINES_PACKAGE))]:
            del sys.modules[name]
    package = importlib.import_module(prefix)
    return [
        importlib.import_module(f"{prefix}.{info.name}")
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name)
        if not info.name.startswith("_")
    ]


def discover_components(reload: bool = False) -> dict[str, tuple[str, Any]]:
    """components/<name> -> (module name, component), from every module's ``COMPONENTS``."""
    found: dict[str, tuple[str, Any]] = {}
    for module in component_modules(reload):
        for name, component in getattr(module, "COMPONENTS", {}).items():
            if name in found:
                raise InvalidInputError(f"component folder {name!r} defined twice: in {found[name][0]} and "
                                        f"{module.__name__}")
            found[name] = (module.__name__, component)
    return dict(sorted(found.items()))


def discover_pipelines(reload: bool = False) -> dict[str, tuple[str, Any]]:
    """pipelines/<stem>.yaml -> (module name, pipeline function), from every module of
    ``dummy_training.kfp.pipelines`` defining ``PIPELINE``."""
    found: dict[str, tuple[str, Any]] = {}
    for module in _package_modules(PIPELINES_PACKAGE, reload):
        pipeline = getattr(module, "PIPELINE", None)
        if pipeline is None:
            log.warning("%s defines no PIPELINE; skipped", module.__name__)
            continue
        found[module.__name__.rsplit(".", 1)[1]] = (module.__name__, pipeline)
    return found


def discover_metadata() -> dict[str, Any]:
    """components/<name> -> its ``ComponentInfo``, from every component module's ``METADATA``."""
    found: dict[str, Any] = {}
    for module in component_modules():
        found.update(getattr(module, "METADATA", {}))
    return found


def source_file(module: str) -> str:
    """``dummy_training.kfp.x.y`` -> ``container/dummy_training/kfp/x/y.py`` (for notes and logs)."""
    return f"container/{module.replace('.', '/')}.py"


def targets(image: str | None = None) -> list[Target]:
    """Every YAML the repository carries, with what compiles it (from the package alone: no checkout)."""
    from dummy_training.kfp import components as kfp_components

    reload = False
    if image is not None:
        os.environ[kfp_components.IMAGE_ENV] = image
    if kfp_components.image() != kfp_components.IMAGE:
        reload = True  # the environment changed since the components were imported
    out = [
        Target(Path("components") / name / COMPONENT_FILE, f"{module}:{name}", comp)
        for name, (module, comp) in discover_components(reload).items()
    ]
    for stem, (module, pipeline) in discover_pipelines(reload).items():
        out.append(Target(Path("pipelines") / f"{stem}.yaml", module, pipeline))
        out.append(Target(PACKAGE_PIPELINES_DIR / f"{stem}.yaml", module, pipeline))
    return out


@dataclass(frozen=True)
class ReadmeTarget:
    """A README whose generated blocks (``dummy_training.kfp.readme``) must agree with the definitions."""

    path: Path  # relative to the repository root
    source: str
    render: Callable[[str], str]  # the README's current text -> its text with every block regenerated


def readme_targets() -> list[ReadmeTarget]:
    """``components/<name>/README.md`` for every component, ``pipelines/README.md`` for every pipeline, and
    ``components/<name>/metadata.yaml`` (wholly generated: ``readme.metadata_yaml``)."""
    from dummy_training.kfp import readme

    out = []
    for name, (module, comp) in discover_components().items():
        path = Path("components") / name / "README.md"
        source = f"{module.replace('.', '/')}.py ({comp.name})"
        out.append(ReadmeTarget(path, f"{module}:{name}", lambda text, c=comp, p=path, s=source: readme.fill(
            text, readme.component_blocks(c), str(p), f"container/{s}")))
    for name, info in discover_metadata().items():
        path = Path("components") / name / METADATA_FILE
        out.append(ReadmeTarget(path, f"{info.module}:METADATA", lambda _text, i=info, n=name: readme.metadata_yaml(
            n, i, source_file(i.module))))
    pipelines = discover_pipelines()
    blocks = {f"parameters {stem}": readme.pipeline_parameters(pipeline) for stem, (_src, pipeline) in
              pipelines.items()}
    sources = ", ".join(source_file(module) for module, _p in pipelines.values())
    path = Path("pipelines") / "README.md"
    out.append(ReadmeTarget(path, sources, lambda text: readme.fill(text, blocks, str(path), sources)))
    return out


_SDK_VERSION = re.compile(r"^(sdkVersion: kfp-\d+\.\d+)\.\S+$", re.M)


def normalized(text: str) -> str:
    """Compiled YAML as the drift check compares it: the kfp patch release of ``sdkVersion`` left out
    (``sdkVersion: kfp-2.17.3`` -> ``sdkVersion: kfp-2.17.*``); major and minor, and everything else, count."""
    return _SDK_VERSION.sub(r"\1.*", text)


def compile_one(obj: Any, path: Path) -> None:
    from kfp import compiler

    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(obj, str(path))


def compile_text(obj: Any) -> str:
    with tempfile.TemporaryDirectory(prefix="dummy-training-compile-") as tmp:
        out = Path(tmp) / "out.yaml"
        compile_one(obj, out)
        return out.read_text()


def compile_all(root: Path | None, image: str | None = None, check: bool = False,
                echo: Callable[[str], None] = print, output_dir: Path | None = None) -> list[Path]:
    """Write (or with ``check``, compare) every YAML; return the paths written or found drifted.

    With ``output_dir`` every component and pipeline YAML is written under it instead (``components/<name>/
    component.yaml``, ``pipelines/<stem>.yaml``), whatever is there, and the tracked files are left alone: how a
    platform team compiles for its own registry (``--image``), from an install or a checkout; ``root`` is then
    not used (None is fine)."""
    if output_dir is not None and check:
        raise InvalidInputError("--check compares the tracked YAML: it takes no --output-dir")
    if output_dir is None:
        _refuse_another_image(image or os.environ.get(_image_env()))
    changed: list[Path] = []
    saved_image = os.environ.get(_image_env())
    try:
        found = targets(image)
    finally:
        if output_dir is not None:  # the image given for DIR does not stick to later compiles in this process
            _restore_env(_image_env(), saved_image)
    if output_dir is not None:
        for target in found:
            if target.path.parts[: len(PACKAGE_PIPELINES_DIR.parts)] == PACKAGE_PIPELINES_DIR.parts:
                continue  # the package's own copy is the checkout's business
            dest = output_dir / target.path
            text = compile_text(target.obj)
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_text(text)
            except OSError as exc:
                raise RuntimeIOError(f"cannot write {dest}: {exc.strerror}") from None
            changed.append(dest)
            echo(f"wrote       {dest}  ({target.source})")
        return changed
    if root is None:  # pragma: no cover - run() finds the root unless --output-dir
        raise InvalidInputError("the tracked files need the repository root")
    jobs: list[tuple[Any, Callable[[str | None], str]]] = [
        (t, lambda _current, t=t: compile_text(t.obj)) for t in found]
    jobs += [(t, lambda current, t=t: t.render(current or "")) for t in readme_targets()]
    for target, make in jobs:
        dest = root / target.path
        current = dest.read_text() if dest.is_file() else None
        fresh = make(current)
        shown = str(target.path)
        if current is not None and normalized(current) == normalized(fresh):
            echo(f"up to date  {shown}  ({target.source})")
            continue
        changed.append(dest)
        if check:
            echo(f"DRIFTED     {shown}  ({target.source})" if current is not None else f"MISSING     {shown}")
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(fresh)
            echo(f"wrote       {shown}  ({target.source})")
    if check and changed:
        raise DriftError(f"{len(changed)} YAML/README file(s) differ from a fresh compile: run `dummy-training "
                         "compile` and commit the result")
    return changed


def _refuse_another_image(image: str | None) -> None:
    """The tracked files name the default image (what ``--check`` compares); another image goes elsewhere."""
    from dummy_training.kfp.components import DEFAULT_IMAGE, IMAGE_ENV

    if image and image != DEFAULT_IMAGE:
        given = "--image" if image != os.environ.get(IMAGE_ENV) else f"${IMAGE_ENV}"
        raise InvalidInputError(f"the tracked YAML names {DEFAULT_IMAGE}, not {image} (from {given}): to compile "
                                f"for your registry, write it elsewhere: dummy-training compile --image {image} "
                                "--output-dir DIR")


def _image_env() -> str:
    from dummy_training.kfp import components as kfp_components

    return kfp_components.IMAGE_ENV


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


# ------------------------------------------------------------------------------------------------ CLI
def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compile",
        help="component and pipeline YAML for your registry (--image IMG --output-dir DIR); in the checkout, "
             "regenerate the tracked YAML (--check: CI's drift test)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    _add_arguments(p)
    p.set_defaults(func=run, needs=("kfp",))


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", type=Path, help="repository root, for the tracked files (default: found from the current "
                                             "directory; not needed with --output-dir)")
    p.add_argument("--image", help="image the components run in, with --output-dir (default "
                                   "dummy-training:<version>, which the tracked YAML names)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if any YAML differs (CI)")
    p.add_argument("--output-dir", type=Path, metavar="DIR",
                   help="write every component and pipeline YAML under DIR (components/<name>/component.yaml, "
                        "pipelines/<name>.yaml) and leave the tracked files alone; with --image IMAGE, the YAML "
                        "for your registry")


def run(args: argparse.Namespace) -> int:
    try:
        import kfp  # noqa: F401
    except ImportError:
        raise MissingExtraError("dummy-training compile", "kfp") from None
    root: Path | None = None  # --output-dir: everything comes from the package, so any install works
    if args.output_dir is None or args.check:
        root = args.root.resolve() if args.root else find_root()
    compile_all(root, image=args.image, check=args.check, output_dir=args.output_dir)
    return EXIT_OK
