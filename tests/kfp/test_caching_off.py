"""Pipelines compiled to never reuse a cached result, since a run's ``enable_caching=False`` cannot do it for ours.

kfp 2.17's ``Client.run_pipeline``/``create_run_from_pipeline_package(enable_caching=False)`` overrides the caching
option of the root DAG's tasks only (``kfp.client.client._override_caching_options``), and every task of our
pipelines sits inside a ``dsl.If`` or ``dsl.ParallelFor``: on KFP's backend such a run still reuses the cached
outputs (seen by tests/peers/test_kfp_cluster.py). What works is compiling with KFP's own switch,
``KFP_DISABLE_EXECUTION_CACHING_BY_DEFAULT=true`` (read when kfp is imported, hence a fresh process here), which
``task_settings.configure`` leaves in force.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]


def executor_tasks(spec: dict[str, Any]) -> dict[str, Any]:
    """task name -> its cachingOptions, for every task running an executor (not a sub-DAG), in every DAG."""
    comps = spec["components"]
    dags = [spec["root"]["dag"]] + [c["dag"] for c in comps.values() if "dag" in c]
    return {name: task.get("cachingOptions", {}) for dag in dags for name, task in dag.get("tasks", {}).items()
            if "executorLabel" in comps.get(task["componentRef"]["name"], {})}


def test_committed_pipelines_cache_every_task() -> None:
    for path in sorted((REPO / "pipelines").glob("*.yaml")):
        tasks = executor_tasks(next(yaml.safe_load_all(path.read_text())))
        assert tasks and all(opts.get("enableCache") is True for opts in tasks.values()), (path.name, tasks)


def test_compiled_with_kfp_switch_caches_no_task(tmp_path: Path) -> None:
    env = {**os.environ, "KFP_DISABLE_EXECUTION_CACHING_BY_DEFAULT": "true"}
    subprocess.run([sys.executable, "-m", "dummy_training", "compile", "--output-dir", str(tmp_path)], env=env,
                   check=True, capture_output=True, cwd=tmp_path, timeout=600)
    paths = sorted((tmp_path / "pipelines").glob("*.yaml"))
    assert [p.name for p in paths] == sorted(p.name for p in (REPO / "pipelines").glob("*.yaml"))
    for path in paths:
        tasks = executor_tasks(next(yaml.safe_load_all(path.read_text())))
        assert tasks and not any(opts.get("enableCache") for opts in tasks.values()), (path.name, tasks)
