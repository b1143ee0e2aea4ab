"""Every importer task of our compiled pipelines keeps its task name as its display name.

KFP 2.17.0's backend records an importer's execution under ``taskInfo.name`` (its display name), while the driver
of the task consuming the imported artifact looks the producer up by task name: an importer given a display name
breaks every run at the first consumer ("failed to resolve input artifact ... cannot find producer task
\"importer_9\""), on the real backend only (kfp.local resolves by task name). Found by tests/peers/test_kfp_cluster.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
#: the tracked pipelines and the copies shipped in the package (``compile --check`` keeps both equal to a fresh compile)
COMMITTED = sorted((REPO / "pipelines").glob("*.yaml")) + sorted(
    (REPO / "container" / "dummy_training" / "kfp" / "data").rglob("*pipeline*.yaml"))


def importer_tasks(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """(task name, taskInfo.name) of every task running an importer executor, in every DAG of the spec."""
    executors = spec["deploymentSpec"]["executors"]
    components = spec["components"]
    dags = [spec["root"]["dag"]] + [c["dag"] for c in components.values() if "dag" in c]
    found = []
    for dag in dags:
        for name, task in dag.get("tasks", {}).items():
            comp = components.get(task["componentRef"]["name"], {})
            if "importer" in executors.get(comp.get("executorLabel", ""), {}):
                found.append((name, task["taskInfo"]["name"]))
    return found


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_committed_pipelines_importers_keep_their_names(path: Path) -> None:
    spec = next(yaml.safe_load_all(path.read_text()))
    tasks = importer_tasks(spec)
    assert tasks, f"{path.name} has no importer task"
    for name, shown in tasks:
        assert shown == name, f"{path.name}: importer task {name} is displayed as {shown}"

