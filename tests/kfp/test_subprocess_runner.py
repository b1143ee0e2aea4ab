"""The components under kfp.local.SubprocessRunner: its default (use_venv=True) runs a task in a fresh, empty venv,
which has neither kfp nor dummy_training (our components are install_kfp_package=False: they run in the image).
So a task there ends with one line saying to pass use_venv=False, not "No module named 'kfp'"; with
use_venv=False the same components run (every other kfp.local test here)."""

# No ``from __future__ import annotations``: KFP reads the pipeline annotations at decoration time.
import pytest

kfp = pytest.importorskip("kfp")

from kfp import local  # noqa: E402

from dummy_training.kfp.compile import discover_components  # noqa: E402
from dummy_training.kfp.components import PREFLIGHT  # noqa: E402
from dummy_training.kfp.components.steps import check_model_op, check_s3_model_op, unknown_backend_op  # noqa: E402


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "dummy-training: error:" in line]


def test_default_subprocess_runner_fails_with_one_line_naming_use_venv(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # kfp upgrades pip in the new venv: keep it off the network
    local.init(runner=local.SubprocessRunner(), pipeline_root=str(tmp_path / "root"))  # use_venv=True
    with pytest.raises(RuntimeError, match="FAILURE"):
        check_s3_model_op(model_s3_uri="s3://bucket/out/model.tar.gz")
    out = capsys.readouterr().out
    (line,) = _error_lines(out)
    assert "pass use_venv=False" in line and "has no kfp and no dummy_training" in line
    assert "No module named" not in out and "Traceback" not in out


def test_every_component_and_pipeline_step_starts_with_the_check() -> None:
    comps = [c for _m, c in discover_components().values()] + [check_model_op, check_s3_model_op,
                                                                unknown_backend_op]
    for comp in comps:
        script = comp.component_spec.implementation.container.command[2]
        assert script.index(PREFLIGHT) < script.index("kfp.dsl.executor_main"), comp.name
