"""SIGTERM reaches the component's Python: KFP cancels a run, and Kubernetes deletes a pod, by sending SIGTERM to
the container's first process. The task's command is ``sh -ec`` (kfp's); unless the shell ``exec``s the executor,
the signal stops at the shell (as PID 1 in a container it is ignored; here the shell dies and Python runs on), and
the kubelet SIGKILLs Python after the grace period: exit 137 and whatever partial state it left. With the
``exec`` (``runs_in_image``) and the signal handlers the repack entry points install, the task ends 130 with one
line and no output. Runs the committed component.yaml's command as KFP's launcher does (tests/kfp_task.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kfp_task import executor_input, task_argv, zeros_model

from dummy_training.kfp.components import EXECUTOR_EXEC_LINE


@pytest.mark.parametrize("component", ["dummy_training", "dummy_training_s3", "sagemaker_dummy_training",
                                       "ack_dummy_training"])
def test_the_committed_command_execs_the_executor(component: str) -> None:
    from kfp_task import component_container

    script = component_container(component)["command"][2]
    assert EXECUTOR_EXEC_LINE in script
    assert script.rstrip().splitlines()[-1].lstrip().startswith(EXECUTOR_EXEC_LINE)


def test_sigterm_mid_repack_ends_the_task_130_with_one_line_and_no_output(tmp_path: Path) -> None:
    model = zeros_model(tmp_path / "model.tar.gz", 1 << 30)
    out = tmp_path / "out"
    executor = executor_input(
        inputs={"model": str(model)},
        outputs={"output_model": str(out / "output_model"), "report": str(out / "report"),
                 "metrics": str(out / "metrics")},
        parameters={"hyperparameters_json": json.dumps({"epochs": 3})},
        output_file=str(out / "executor_output.json"))
    command, args = task_argv("dummy_training", executor)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
           "DUMMY_TRAINING_SCAN_THREADS": "1"}
    proc = subprocess.Popen([*command, *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            env=env, cwd=tmp_path)
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "input size:" in line:  # the sink is opened next, then the scan of 1 GiB
                proc.send_signal(signal.SIGTERM)  # to the first process, as the kubelet does
                break
        rest = proc.stderr.read()
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = "".join(lines) + rest
    assert code == 130, log
    errors = [ln for ln in log.splitlines() if "dummy-training: error:" in ln]
    assert len(errors) == 1 and "SIGTERM" in errors[0], log
    assert "Traceback" not in log
    # no output, and no temporary file beside where it would have been
    assert not out.exists() or [p for p in out.rglob("*") if p.is_file()] == []
