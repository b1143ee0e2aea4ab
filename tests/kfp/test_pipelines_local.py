"""The compiled pipelines run end to end with kfp.local (SubprocessRunner, use_venv=False) on generated models.

These run the committed YAML (the package copy `dummy-training demo` uses, which the drift test keeps equal to
pipelines/*.yaml), so they test what a user uploads, not only the Python definitions.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from dummy_training import cli, contract
from dummy_training.errors import EXIT_INVALID_INPUT, EXIT_NOT_FOUND, EXIT_RUNTIME
from dummy_training.kfp.demo import PipelineRunError, packaged_pipeline, run_pipeline
from dummy_training.kfp.example_model import (
    EXAMPLE_HYPERPARAMETERS,
    OWN_HYPERPARAMETERS,
    example_members,
    write_example_hyperparameters,
    write_example_model,
)
from dummy_training.step.report import md_text

REPO = Path(__file__).resolve().parents[2]


def _contents(archive: Path) -> dict[str, bytes | None]:
    """name -> bytes (None for directories), in archive order."""
    out: dict[str, bytes | None] = {}
    with tarfile.open(archive, "r:gz") as tar:
        for m in tar.getmembers():
            fh = tar.extractfile(m) if m.isfile() else None
            out[m.name] = fh.read() if fh else None
    return out


def _run(tmp_path: Path, echo: io.StringIO | None = None, pipeline: str = "dummy_training_pipeline.yaml", **args):
    arguments = {"backend": "kubernetes", **args}
    return run_pipeline(packaged_pipeline(pipeline), tmp_path / "out", arguments, echo=echo or io.StringIO())


def test_packaged_pipelines_are_the_committed_ones() -> None:
    for name in ("dummy_training_pipeline.yaml", "dummy_training_parallel_pipeline.yaml"):
        assert packaged_pipeline(name).read_text() == (REPO / "pipelines" / name).read_text()


def test_inject_from_hyperparameters_file(tmp_path: Path) -> None:
    model = write_example_model(tmp_path / "in" / "model.tar.gz")
    hp = write_example_hyperparameters(tmp_path / "in" / "hp" / "hyperparameters.json")
    result = _run(tmp_path, model_uri=str(model), hyperparameters_uri=str(hp))

    assert result.metadata["decision"] == contract.DECISION_INJECTED
    assert result.metadata["size"] == result.output.stat().st_size
    assert result.metadata["sha256"] == hashlib.sha256(result.output.read_bytes()).hexdigest()
    got = _contents(result.output)
    original = dict(example_members())
    # every original file is there, byte for byte, and hyperparameters.json was added at the root
    for name, data in original.items():
        assert got[name] == data, name
    assert json.loads(got[contract.HYPERPARAMETERS_FILENAME]) == EXAMPLE_HYPERPARAMETERS
    assert set(got) == set(original) | {"code", contract.HYPERPARAMETERS_FILENAME}
    # the downstream check step read the same hyperparameters out of the artifact
    assert result.checked_hyperparameters == EXAMPLE_HYPERPARAMETERS
    assert result.member_count == len(got)
    assert model.read_bytes() != result.output.read_bytes()
    # the task's Markdown report (Output[Markdown]) names the decision, the injected file and every member
    report = result.report_path.read_text()
    assert report.startswith("# dummy-training repack: hyperparameters.json injected")
    assert "**Decision: injected.**" in report
    assert f"`[Argument]` {md_text(hp)}" in report
    assert f"| **{md_text(contract.HYPERPARAMETERS_FILENAME)}** | file, **injected** |" in report
    for name in got:
        if name != contract.HYPERPARAMETERS_FILENAME:
            assert f"| {md_text(name)}{'/' if got[name] is None else ''} |" in report, name
    assert f"`{result.metadata['sha256']}`" in report
    # and its metrics (Output[Metrics]) are the figures the KFP UI compares
    assert result.metrics["injected"] == 1.0
    assert result.metrics["members"] == len(got)  # the output's members, the injected one included
    assert result.metrics["output_bytes"] == result.output.stat().st_size
    assert result.metrics["input_bytes"] == model.stat().st_size
    assert result.metrics["bytes_written"] > 0 and result.metrics["seconds"] > 0


def test_inject_inline_json_with_a_model_directory(tmp_path: Path) -> None:
    model_dir = tmp_path / "in" / "model"
    model_dir.mkdir(parents=True)
    write_example_model(model_dir)  # a directory holding model.tar.gz, as a KFP Model artifact often is
    result = _run(tmp_path, model_uri=str(model_dir), hyperparameters_json='{"epochs": 7}')
    assert result.metadata["decision"] == contract.DECISION_INJECTED
    assert json.loads(_contents(result.output)[contract.HYPERPARAMETERS_FILENAME]) == {"epochs": 7}
    assert result.checked_hyperparameters == {"epochs": 7}


def test_preserve_keeps_the_archive_byte_for_byte(tmp_path: Path) -> None:
    model = write_example_model(tmp_path / "in" / "model.tar.gz", with_hyperparameters=True)
    hp = write_example_hyperparameters(tmp_path / "in" / "hyperparameters.json")
    result = _run(tmp_path, model_uri=str(model), hyperparameters_uri=str(hp))

    assert result.metadata["decision"] == contract.DECISION_PRESERVED
    assert result.output.read_bytes() == model.read_bytes()
    assert json.loads(_contents(result.output)[contract.HYPERPARAMETERS_FILENAME]) == OWN_HYPERPARAMETERS
    assert result.checked_hyperparameters == OWN_HYPERPARAMETERS
    report = result.report_path.read_text()
    assert report.startswith("# dummy-training repack: archive preserved")
    assert "**Decision: preserved.**" in report and "byte for byte" in report
    assert f"The given hyperparameters were ignored, the archive's own file wins: `[Argument]` {md_text(hp)} (" \
        in report
    for name, data in _contents(result.output).items():
        assert f"| {md_text(name)}{'/' if data is None else ''} |" in report, name
    assert "injected**" not in report
    assert result.metrics["injected"] == 0.0 and result.metrics["bytes_kept_verbatim"] == model.stat().st_size


def test_missing_hyperparameters_fails_the_run_with_the_engine_message(tmp_path: Path) -> None:
    model = write_example_model(tmp_path / "in" / "model.tar.gz")
    echo = io.StringIO()
    with pytest.raises(PipelineRunError) as info:
        _run(tmp_path, echo=echo, model_uri=str(model))
    assert info.value.exit_code == EXIT_NOT_FOUND  # the repack's own code, as the failing task exited
    message = "archive has no root hyperparameters.json and no hyperparameters were given"
    assert message in str(info.value)
    assert message in echo.getvalue()  # the task's own stderr line, as kfp.local streamed it
    assert "FAILURE" in echo.getvalue()
    assert not list((tmp_path / "out" / "pipeline_root").glob("**/output_model")), "no output on failure"
    # in the component's terms: its inputs, not the CLI's flags nor the container paths the CLI searches
    (line,) = [x for x in echo.getvalue().splitlines() if "dummy-training: error:" in x]
    assert "input `hyperparameters`, input `hyperparameters_json`" in line
    assert "--hyperparameters" not in line and "/opt/ml" not in line


def test_unknown_backend_fails_the_run(tmp_path: Path) -> None:
    model = write_example_model(tmp_path / "in" / "model.tar.gz", with_hyperparameters=True)
    with pytest.raises(PipelineRunError, match="unknown backend 'kubernetess'"):
        _run(tmp_path, model_uri=str(model), backend="kubernetess")


def test_parallel_pipeline_repacks_every_model(tmp_path: Path) -> None:
    bare = write_example_model(tmp_path / "in" / "a" / "model.tar.gz")
    own = write_example_model(tmp_path / "in" / "b" / "model.tar.gz", with_hyperparameters=True)
    out = tmp_path / "out"
    run_pipeline(packaged_pipeline("dummy_training_parallel_pipeline.yaml"), out,
                 {"model_uris": [str(bare), str(own)], "hyperparameters_json": '{"epochs": 2}'}, echo=io.StringIO())
    outputs = sorted(p for p in (out / "pipeline_root").glob("*/**/output_model") if p.is_file())
    assert len(outputs) == 2
    found = sorted(json.loads(_contents(o)[contract.HYPERPARAMETERS_FILENAME]) == {"epochs": 2} for o in outputs)
    assert found == [False, True]  # one injected with the given JSON, one kept its own
    assert any(o.read_bytes() == own.read_bytes() for o in outputs)


def test_demo_command_inject(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from dummy_training.kfp import demo

    parses: list[str] = []  # every parse of a large YAML text (the pipeline is 124 KB) in this process, by loader

    def counting(name: str):  # noqa: ANN202
        real = getattr(yaml, name)

        def parse(stream, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            if isinstance(stream, str) and len(stream) > 50_000:
                parses.append(getattr(kwargs.get("Loader"), "__name__", name))
            return real(stream, *args, **kwargs)
        return parse

    for name in ("load", "load_all", "safe_load", "safe_load_all"):
        monkeypatch.setattr(yaml, name, counting(name))
    demo._LOADED.clear()
    assert cli.main(["demo", "--output-dir", str(tmp_path)]) == 0
    assert parses == ["CSafeLoader" if yaml.__with_libyaml__ else "SafeLoader"]  # once, with libyaml's loader
    out = capsys.readouterr().out
    # (lstrip: after other kfp.local runs in this process, kfp's indented printing may still be in force)
    assert out.lstrip().startswith("Running dummy_training_pipeline.yaml with kfp.local")
    assert "decision:         injected" in out
    assert "hyperparameters.json" in out and "model.safetensors" in out
    outputs = [p for p in (tmp_path / "pipeline_root").glob("**/output_model") if p.is_file()]  # the archive itself
    assert len(outputs) == 1 and str(outputs[0]) in out
    assert json.loads(_contents(outputs[0])[contract.HYPERPARAMETERS_FILENAME]) == EXAMPLE_HYPERPARAMETERS


def test_demo_command_preserve(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["demo", "--output-dir", str(tmp_path), "--preserve"]) == 0
    out = capsys.readouterr().out
    assert "decision:         preserved" in out
    assert json.dumps(OWN_HYPERPARAMETERS, sort_keys=True) in out


@pytest.mark.parametrize("version", ["2.15.2", "2.16.1"])
def test_demo_refuses_a_kfp_whose_local_runner_cannot_run_the_pipeline(
        version: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """kfp.local before 2.17 refuses (2.15) or ignores (2.16: runs the S3-direct task of a local model) dsl.If:
    the demo says so in one line, exit 3, before writing anything (.ci/kfp-oldest.sh sees it with a real 2.15)."""
    import importlib.metadata

    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: version if name == "kfp" else real(name))
    assert cli.main(["demo", "--output-dir", str(tmp_path / "out")]) == EXIT_RUNTIME
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("dummy-training: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"this is kfp {version}" in lines[0] and "pip install 'kfp>=2.17,<3'" in lines[0]
    assert not (tmp_path / "out").exists()


def test_demo_command_failure_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = write_example_model(tmp_path / "model.tar.gz")
    assert cli.main(["demo", "--output-dir", str(tmp_path / "out"), "--model", str(model)]) == EXIT_NOT_FOUND
    err = capsys.readouterr().err
    assert "the pipeline run failed" in err and "no root hyperparameters.json" in err
    assert "DUMMY_TRAINING_EXIT_CODE_FILE" not in os.environ


def test_demo_runs_the_given_pipeline(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`demo --pipeline` runs the pipeline it is given: the parallel one gets the model as a one-model list."""
    rc = cli.main(["demo", "--output-dir", str(tmp_path), "--pipeline",
                   str(REPO / "pipelines" / "dummy_training_parallel_pipeline.yaml")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "Running dummy_training_parallel_pipeline.yaml" in out and "decision:         injected" in out
    (output,) = [p for p in (tmp_path / "pipeline_root").glob("**/output_model") if p.is_file()]  # the archive
    assert json.loads(_contents(output)[contract.HYPERPARAMETERS_FILENAME]) == EXAMPLE_HYPERPARAMETERS


@pytest.mark.parametrize(("content", "needle"), [
    ("# not yaml: [\n", "not a compiled KFP pipeline"),
    ("a: 1\n", "not a compiled KFP pipeline"),
    (None, "it has no model_uri or model_uris parameter"),
])
def test_demo_pipeline_that_it_cannot_run_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                             content: str | None, needle: str) -> None:
    path = tmp_path / "p.yaml"
    if content is None:  # a compiled component: loads, but takes no model_uri
        path.write_text((REPO / "components" / "dummy_training" / "component.yaml").read_text())
    else:
        path.write_text(content)
    assert cli.main(["demo", "--output-dir", str(tmp_path / "out"), "--pipeline", str(path)]) == EXIT_INVALID_INPUT
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("dummy-training: error:")]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err
    assert not (tmp_path / "out" / "pipeline_root").exists()  # nothing ran


@pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")
def test_s3_component_repacks_s3_to_s3(tmp_path: Path, moto_endpoint: str, s3, bucket: str) -> None:  # noqa: ANN001
    from kfp import local

    from dummy_training.kfp.components.native import dummy_training_s3

    model = write_example_model(tmp_path / "model.tar.gz")
    s3.put_object(Bucket=bucket, Key="in/model.tar.gz", Body=model.read_bytes())
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    task = dummy_training_s3(model=f"s3://{bucket}/in/model.tar.gz", output_uri=f"s3://{bucket}/out/",
                             hyperparameters_json='{"lr": 0.1}', endpoint_url=moto_endpoint)
    uri = task.outputs[contract.OUTPUT_MODEL_S3_URI]
    assert uri == f"s3://{bucket}/out/model.tar.gz"
    body = s3.get_object(Bucket=bucket, Key="out/model.tar.gz")["Body"].read()
    artifact = task.outputs[contract.OUTPUT_MODEL]  # the Model artifact is the object itself, no copy in the pod
    assert artifact.uri == uri and not list((tmp_path / "root").glob("**/output_model"))
    assert (artifact.metadata["decision"], artifact.metadata["size"]) == (contract.DECISION_INJECTED, len(body))
    written = tmp_path / "written.tar.gz"
    written.write_bytes(body)
    assert json.loads(_contents(written)[contract.HYPERPARAMETERS_FILENAME]) == {"lr": 0.1}
    report = Path(task.outputs[contract.OUTPUT_REPORT].path).read_text()
    assert "**Decision: injected.**" in report and f"| URI | s3://{md_text(bucket)}/out/model.tar.gz |" in report
    assert "| Bytes uploaded |" in report and "never read back" in report  # no sha256 of an S3 output
    metrics = task.outputs[contract.OUTPUT_METRICS].metadata
    assert metrics["bytes_uploaded"] > 0 and metrics["output_bytes"] == len(body)


@pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:.*have no effect in the current local runner")
def test_pipeline_kubernetes_s3_direct_never_downloads_the_model(
    tmp_path: Path, moto_endpoint: str, s3, bucket: str, monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
    capsys: pytest.CaptureFixture,
) -> None:
    from kfp import components, local

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)  # the tasks' subprocesses inherit it
    model = write_example_model(tmp_path / "model.tar.gz")
    s3.put_object(Bucket=bucket, Key="in/model.tar.gz", Body=model.read_bytes())
    s3.put_object(Bucket=bucket, Key="in/hyperparameters.json", Body=b'{"epochs": 4}')
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    pipeline = components.load_component_from_file(str(packaged_pipeline()))
    pipeline(model_uri=f"s3://{bucket}/in/model.tar.gz", hyperparameters_uri=f"s3://{bucket}/in/hyperparameters.json",
             backend="kubernetes", s3_direct=True, s3_prefix=f"s3://{bucket}/out")

    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="out/").get("Contents", [])]
    assert len(keys) == 1 and keys[0].endswith("/model.tar.gz"), keys  # out/<run uuid>/<task uuid>/model.tar.gz
    written = tmp_path / "written.tar.gz"
    written.write_bytes(s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read())
    assert json.loads(_contents(written)[contract.HYPERPARAMETERS_FILENAME]) == {"epochs": 4}
    assert not list((tmp_path / "root").glob("**/model.tar.gz")), "nothing may be written locally"
    out = capsys.readouterr().out
    assert "'repack-s3-direct'" in out or "dummy-training-s3" in out
    assert '{"epochs": 4}' in out  # the S3 check step's output
