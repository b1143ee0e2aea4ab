"""The pipelines of dummy-training, shipped in the package so ``dummy-training compile --output-dir DIR`` works
from any install (no checkout needed).

Convention (``dummy-training compile`` relies on it): every module here whose name does not start with ``_``
exposes ``PIPELINE`` (a ``@dsl.pipeline`` function) and compiles to ``pipelines/<module>.yaml`` (and a copy in
``dummy_training/kfp/data/pipelines/`` for ``dummy-training demo``).
"""
