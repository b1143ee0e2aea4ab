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
- Each component folder gets a ``README.md`` (inputs/outputs table, usage) written by hand.

Pipelines live in ``pipelines/*.py`` (outside the package); each exposes ``PIPELINE`` (the ``@dsl.pipeline``
function) and compiles to ``pipelines/<module>.yaml``; see ``dummy_training.kfp.compile``.

``IMAGE`` is the image every component runs in: ``dummy-training:<version>`` (what ``container/build.sh``
builds), or the value of the environment variable ``DUMMY_TRAINING_IMAGE`` when the components are compiled
(e.g. ``DUMMY_TRAINING_IMAGE=123456789012.dkr.ecr.us-east-1.amazonaws.com/dummy-training:0.1.0
dummy-training compile``). The committed YAMLs use the default.
"""

from __future__ import annotations

import os

from dummy_training import __version__

IMAGE_ENV = "DUMMY_TRAINING_IMAGE"
IMAGE_NAME = "dummy-training"
DEFAULT_IMAGE = f"{IMAGE_NAME}:{__version__}"


def image() -> str:
    """The image the components are compiled with: ``$DUMMY_TRAINING_IMAGE`` or ``dummy-training:<version>``."""
    return os.environ.get(IMAGE_ENV) or DEFAULT_IMAGE


#: Read once, when the component modules are imported (i.e. at compile time).
IMAGE = image()
