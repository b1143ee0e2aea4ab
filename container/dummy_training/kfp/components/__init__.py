"""The KFP components of dummy-training: one module per component family, discovered without a registry.

Convention (``dummy-training compile`` relies on it; follow it when you add a module here):

- A module in this package that defines components exposes a module-level
  ``COMPONENTS: dict[str, BaseComponent]`` mapping a folder name under ``components/`` to a component, e.g.
  ``COMPONENTS = {"dummy_training": dummy_training_op}``. The compile command imports every module of this
  package (``pkgutil``; modules whose name starts with ``_`` are skipped), collects the ``COMPONENTS`` dicts and
  writes ``components/<name>/component.yaml`` for each. A name may appear in one module only.
- Components are lightweight ``@dsl.component``s with ``base_image=IMAGE`` and ``install_kfp_package=False``
  (the image already has kfp, and ``kfp.local`` with ``use_venv=False`` must not pip-install anything); every
  import is inside the function, and the function body stays thin: it calls code of this package, which the
  image carries.
- Input and output names come from ``dummy_training.contract`` (``MODEL.name``, ``HYPERPARAMETERS.name``,
  ``HYPERPARAMETERS_JSON.name``, ``OUTPUT_MODEL``, ``OUTPUT_MODEL_S3_URI``, ...); a test checks that they
  agree with the contract and with the flags of ``dummy-training repack``.
- The docstring's ``Args:`` become the input descriptions in the YAML; keep them to one line each.
- Each component is wrapped in ``runs_in_image`` (outermost decorator): its command first checks that the Python
  running it has kfp and dummy_training, else fails with one line saying to pass ``use_venv=False`` to
  ``kfp.local.SubprocessRunner`` (whose default ``use_venv=True`` runs the task in an empty venv), and then
  ``exec``s kfp's executor, so that SIGTERM reaches Python (exit 130) rather than the shell.
- Each component folder gets a ``README.md``: prose written by hand around blocks that ``dummy-training compile``
  generates from the definition (inputs and outputs from the signature and the docstring, image guidance, the
  local runner) and ``compile --check`` drift-checks; see ``dummy_training.kfp.readme``.

- The module also exposes ``METADATA: dict[str, ComponentInfo]`` (same folder names): what
  ``components/<name>/metadata.yaml`` is generated from (the kubeflow/pipelines-components schema: name, tier,
  stability, dependencies with the KFP versions, external services, tags, lastVerified).

Pipelines live in ``dummy_training.kfp.pipelines`` (in the package, so an install compiles them too); each module
exposes ``PIPELINE`` (the ``@dsl.pipeline`` function) and compiles to ``pipelines/<module>.yaml``; see
``dummy_training.kfp.compile``.

``IMAGE`` is the image every component runs in: ``dummy-training:<version>`` (what ``container/build.sh``
builds), or the image given to ``dummy-training compile --image IMG --output-dir DIR`` (which sets the
environment variable ``DUMMY_TRAINING_IMAGE`` while it compiles). The committed YAMLs use the default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from dummy_training import __version__

IMAGE_ENV = "DUMMY_TRAINING_IMAGE"
IMAGE_NAME = "dummy-training"
DEFAULT_IMAGE = f"{IMAGE_NAME}:{__version__}"


def image() -> str:
    """The image the components are compiled with: ``$DUMMY_TRAINING_IMAGE`` or ``dummy-training:<version>``."""
    return os.environ.get(IMAGE_ENV) or DEFAULT_IMAGE


#: Read once, when the component modules are imported (i.e. at compile time).
IMAGE = image()

#: The KFP backends the components and pipelines run on: from 2.15.0 (the first that accepts
#: ``use_secret_as_env(..., optional=True)``; 2.14 refuses every run); 2.17.0 is the one tested against.
KFP_BACKEND_VERSIONS = ">=2.15.0"


@dataclass(frozen=True)
class ComponentInfo:
    """What ``components/<name>/metadata.yaml`` says beyond the definition (see the package docstring)."""

    module: str  # the module declaring it (its ``__name__``), for the generated file's note
    stability: str  # alpha | beta | stable
    external_services: tuple[tuple[str, str], ...]  # (name, version or "")
    tags: tuple[str, ...]
    last_verified: str  # RFC 3339: when this component last ran against the real services it names


#: What the task's shell runs before kfp's executor: a Python without kfp or this package (kfp.local's
#: ``SubprocessRunner()`` default, ``use_venv=True``: a fresh, empty venv) ends the task with one line instead of
#: "No module named 'kfp'". ``find_spec`` locates the packages without importing them (no start-up cost in the
#: image). Spelled without the interpreter's name in the message: kfp.local rewrites every ``python3`` of the
#: command to the interpreter it runs the task with, which is the one this checks.
PREFLIGHT = (
    "python3 -c \"import importlib.util as u, sys; missing = [n for n in ('kfp', 'dummy_training') "
    "if u.find_spec(n) is None]; missing and (print('dummy-training: error: ' + sys.executable + ' has no ' "
    "+ ' and no '.join(missing) + ': this component runs in the dummy-training image (install_kfp_package=False);"
    " with kfp.local.SubprocessRunner pass use_venv=False (its default use_venv=True runs the task in an empty"
    " venv) from an environment where kfp-sagemaker-dummy-training[kfp] is installed', file=sys.stderr), "
    "sys.exit(2))\""
)
_EXECUTOR_LINE = "_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main"
#: The executor replaces the task's shell (``exec``): the kubelet's SIGTERM on a cancelled run or a deleted pod
#: goes to the container's first process, which must be Python (its handler ends the task with exit 130 and no
#: output), not ``sh`` (which dies at once, leaving Python to be SIGKILLed after the grace period: exit 137).
EXECUTOR_EXEC_LINE = "_KFP_RUNTIME=true exec python3 -m kfp.dsl.executor_main"


def runs_in_image(component):  # noqa: ANN001, ANN201 - a kfp PythonComponent, kfp is imported lazily here
    """Put ``PREFLIGHT`` before the executor in ``component``'s command and ``exec`` the executor (see the
    package docstring and ``EXECUTOR_EXEC_LINE``)."""
    container = component.component_spec.implementation.container
    script = container.command[2]
    if EXECUTOR_EXEC_LINE in script:
        return component
    if _EXECUTOR_LINE not in script:  # pragma: no cover - a kfp release that starts components differently
        raise RuntimeError(f"{component.name}: kfp's command changed; cannot add the preflight check")
    container.command[2] = script.replace(_EXECUTOR_LINE, PREFLIGHT + "\n" + EXECUTOR_EXEC_LINE, 1)
    return component
