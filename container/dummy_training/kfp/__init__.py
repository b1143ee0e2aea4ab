"""The Kubeflow Pipelines surface: the component definitions (``components``), what they run inside the
container (``runtime``, free of kfp imports), ``dummy-training compile`` (``compile``) and ``dummy-training demo``
(``demo``, with ``example_model``). The compiled pipelines the demo runs are package data under ``data/``."""
