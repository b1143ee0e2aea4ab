"""The container tier: the built image, run by podman or docker the way its users run it.

Deselected in a plain ``pytest`` (``-m "not container"`` in pyproject.toml); ``pytest -m container`` runs it once
``container/build.sh`` and ``container/build.sh --root`` have built the images (``.ci/container.sh`` does both).
Fixtures and the image names: conftest.py beside this file.
"""

# No ``from __future__ import annotations``: KFP reads the test pipeline's annotations at decoration time.
import io
import json
import os
import re
import tarfile
from pathlib import Path

import pytest
from conftest import IMAGE, IMAGE_UID, ROOT_IMAGE, Engine, root_owned, writable_by_image

from dummy_training import __version__, contract
from dummy_training.kfp.components import DEFAULT_IMAGE
from dummy_training.kfp.example_model import (
    EXAMPLE_HYPERPARAMETERS,
    example_members,
    write_example_hyperparameters,
    write_example_model,
)
from dummy_training.sagemaker.processing_job import ProcessingJobSpec, build_create_processing_job_request

pytestmark = pytest.mark.container

REPO = Path(__file__).resolve().parents[2]
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
MISSING_HYPERPARAMETERS = "archive has no root hyperparameters.json and no hyperparameters were given"


def _contents(archive: Path | bytes) -> dict[str, bytes | None]:
    """name -> bytes (None for directories), in archive order."""
    fileobj = io.BytesIO(archive) if isinstance(archive, bytes) else archive.open("rb")
    out: dict[str, bytes | None] = {}
    with fileobj, tarfile.open(fileobj=fileobj, mode="r:gz") as tar:
        for member in tar.getmembers():
            fh = tar.extractfile(member) if member.isfile() else None
            out[member.name] = fh.read() if fh else None
    return out


def _assert_injected(contents: dict[str, bytes | None], hyperparameters: dict) -> None:
    """Every example member byte for byte, plus hyperparameters.json at the archive root."""
    for name, data in example_members():
        assert contents[name] == data, name
    assert json.loads(contents[contract.HYPERPARAMETERS_FILENAME] or b"") == hyperparameters


# ----------------------------------------------------------------------------------------------- the image
@pytest.mark.parametrize("image", [IMAGE, ROOT_IMAGE])
def test_version(engine: Engine, image: str) -> None:
    proc = engine.run(image, "--version")
    assert (proc.returncode, proc.stdout.strip()) == (0, f"dummy-training {__version__}"), proc.stderr
    assert engine.image_labels(image)["org.opencontainers.image.version"] == __version__


@pytest.mark.parametrize("image, uid", [(IMAGE, IMAGE_UID), (ROOT_IMAGE, 0)])
def test_entrypoint_runs_foreign_commands_as_the_images_user(engine: Engine, image: str, uid: int) -> None:
    """`IMAGE sh -c ...` runs sh (what kfp.local.DockerRunner sends), as the image's user; no build secret stayed."""
    proc = engine.run(image, "sh", "-ec", 'id -u; test ! -e /run/secrets/cacert; echo "$0"', "a b")
    assert (proc.returncode, proc.stdout.split("\n")[:2]) == (0, [str(uid), "a b"]), proc.stderr


# ------------------------------------------------------------------------------- SageMaker Processing layout
def _processing_request(image: str) -> dict:
    spec = ProcessingJobSpec(job_name="container-tier", role_arn="arn:aws:iam::123456789012:role/Processing",
                             image_uri=image, model_s3_uri="s3://bucket/in/model.tar.gz",
                             hyperparameters_s3_uri="s3://bucket/in/hyperparameters.json",
                             output_s3_uri="s3://bucket/out/", report_s3_uri="s3://bucket/report/")
    return build_create_processing_job_request(spec)


def _run_processing_job(engine: Engine, image: str, tmp_path: Path, output_dir: Path,  # noqa: ANN202
                        report_dir: Path):
    """Run the image as SageMaker would for ``_processing_request(image)``: each ProcessingInput's object
    downloaded into a root-owned directory mounted at its LocalPath, the output directories (the model's, the
    job's own report's) at the outputs' LocalPaths, and the request's ContainerEntrypoint + ContainerArguments."""
    request = _processing_request(image)
    staged = {contract.PROCESSING_INPUT_MODEL: lambda d: write_example_model(d / contract.MODEL_FILENAME),
              contract.PROCESSING_INPUT_HYPERPARAMETERS:
                  lambda d: write_example_hyperparameters(d / contract.HYPERPARAMETERS_FILENAME)}
    mounts = []
    for channel in request["ProcessingInputs"]:
        host = root_owned(engine, tmp_path / "inputs" / channel["InputName"])
        staged[channel["InputName"]](host).chmod(0o644)
        mounts.append((host, channel["S3Input"]["LocalPath"]))
    outputs = {o["OutputName"]: o["S3Output"]["LocalPath"] for o in request["ProcessingOutputConfig"]["Outputs"]}
    assert set(outputs) == {contract.PROCESSING_OUTPUT_MODEL, contract.PROCESSING_OUTPUT_REPORT}
    mounts.append((output_dir, outputs[contract.PROCESSING_OUTPUT_MODEL]))
    mounts.append((report_dir, outputs[contract.PROCESSING_OUTPUT_REPORT]))
    app = request["AppSpecification"]
    assert app["ImageUri"] == image
    return engine.run(image, *app["ContainerArguments"], entrypoint=app["ContainerEntrypoint"], mounts=mounts)


@pytest.mark.parametrize("image, output_owner", [(IMAGE, "image user"), (ROOT_IMAGE, "root")],
                         ids=["non-root image, writable output", "root image, root-owned output"])
def test_sagemaker_processing_layout(engine: Engine, tmp_path: Path, image: str, output_owner: str) -> None:
    out, report = tmp_path / "output", tmp_path / "report"
    own = (lambda d: writable_by_image(d)) if output_owner == "image user" else (lambda d: root_owned(engine, d))
    out, report = own(out), own(report)
    proc = _run_processing_job(engine, image, tmp_path, out, report)
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in out.iterdir()] == [contract.MODEL_FILENAME]  # no temp file left beside it
    contents = _contents(out / contract.MODEL_FILENAME)
    _assert_injected(contents, EXAMPLE_HYPERPARAMETERS)
    # the job's own report and result, in the report channel (what the launchers read back)
    assert sorted(p.name for p in report.iterdir()) == [contract.REPORT_FILENAME, contract.RESULT_FILENAME]
    text = (report / contract.REPORT_FILENAME).read_text()
    assert text.startswith("# dummy-training repack: hyperparameters.json injected\n")
    assert f"| Path | {contract.CONTAINER_OUTPUT_DIR}/{contract.MODEL_FILENAME} |".replace("_", "\\_") in text
    result = json.loads((report / contract.RESULT_FILENAME).read_text())
    assert result["decision"] == contract.DECISION_INJECTED
    assert result["output_size"] == (out / contract.MODEL_FILENAME).stat().st_size


def test_sagemaker_root_owned_output_needs_the_root_image(engine: Engine, tmp_path: Path) -> None:
    """SageMaker mounts /opt/ml/processing root-owned: the non-root image fails there with one line and exit 3
    (the documented reason for the -root variant; the root image succeeds: the case above)."""
    out = root_owned(engine, tmp_path / "output")
    report = root_owned(engine, tmp_path / "report")
    proc = _run_processing_job(engine, IMAGE, tmp_path, out, report)
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert proc.returncode == 3, proc.stderr
    assert len(errors) == 1 and errors[0].startswith("dummy-training: error: cannot write to the output directory")
    assert errors[0].endswith(f"{contract.CONTAINER_OUTPUT_DIR}: Permission denied (owned by uid 0, mode 0755; "
                              f"this process runs as uid {IMAGE_UID})")
    assert "Traceback" not in proc.stderr
    assert list(out.iterdir()) == [] and list(report.iterdir()) == []


# ------------------------------------------------------------------------------------------------- S3 to S3
def test_s3_to_s3_inside_the_container(engine: Engine, moto_endpoint: str, s3, bucket: str,  # noqa: ANN001
                                       tmp_path: Path) -> None:
    """`repack --model s3://... --output-uri s3://...` in the image against a moto server on the host network, with
    the report and the result written to S3 too (what an s3_direct SageMaker job does)."""
    model = write_example_model(tmp_path / contract.MODEL_FILENAME)
    s3.put_object(Bucket=bucket, Key="in/model.tar.gz", Body=model.read_bytes())
    s3.put_object(Bucket=bucket, Key="in/hp.json", Body=b'{"epochs": 9}')
    proc = engine.run(IMAGE, "repack", "--model", f"s3://{bucket}/in/model.tar.gz",
                      "--hyperparameters", f"s3://{bucket}/in/hp.json", "--output-uri", f"s3://{bucket}/out/",
                      "--report", f"s3://{bucket}/report/report.md", "--result-json", f"s3://{bucket}/report/result.json",
                      "--endpoint-url", moto_endpoint, env=FAKE_AWS, network="host")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(s3.get_object(Bucket=bucket, Key="report/result.json")["Body"].read())
    assert (result["decision"], result["output"]) == (contract.DECISION_INJECTED, f"s3://{bucket}/out/model.tar.gz")
    report = s3.get_object(Bucket=bucket, Key="report/report.md")["Body"].read().decode()
    assert "**Decision: injected.**" in report and "hyperparameters.json" in report
    head = s3.head_object(Bucket=bucket, Key="out/model.tar.gz")
    body = s3.get_object(Bucket=bucket, Key="out/model.tar.gz")["Body"].read()
    _assert_injected(_contents(body), {"epochs": 9})
    assert head["Metadata"][contract.META_DECISION] == contract.DECISION_INJECTED
    assert head["Metadata"][contract.META_SOURCE_URI] == f"s3://{bucket}/in/model.tar.gz"
    assert head["Metadata"][contract.META_VERSION] == __version__


# ----------------------------------------------------------------------------------------- CPU limit (cgroup)
@pytest.mark.parametrize("cpus, parallel", [(1, False), (2, True)])
def test_cpu_limit_picks_the_scanner(engine: Engine, tmp_path: Path, cpus: int, parallel: bool) -> None:
    """A real cgroup CPU limit (--cpus) decides between the parallel and the single-thread scanner."""
    if parallel and len(os.sched_getaffinity(0)) < 2:
        pytest.skip("this machine has one CPU: no container can be given two")
    model = write_example_model(root_owned(engine, tmp_path / "in") / contract.MODEL_FILENAME)
    model.chmod(0o644)
    out = writable_by_image(tmp_path / "out")
    mounts = [(model.parent, "/data/input"), (out, "/data/out")]
    seen = engine.run(IMAGE, "python3", "-c", "from dummy_training.engine.archive import available_cpus as a; "
                      "print(a())", cpus=cpus)
    assert (seen.returncode, float(seen.stdout)) == (0, cpus), seen.stderr
    proc = engine.run(IMAGE, "repack", "--model", "/data/input/model.tar.gz", "--hyperparameters-json", "{}",
                      "--output-dir", "/data/out", "--result-json", "/data/out/result.json", mounts=mounts, cpus=cpus)
    assert proc.returncode == 0, proc.stderr
    scanner = json.loads((out / "result.json").read_text())["scanner"]
    assert (scanner == "rapidgzip") is parallel, scanner
    assert scanner in ({"rapidgzip"} if parallel else {"zlib-ng", "zlib"})


# ------------------------------------------------------------------------------- kfp.local.DockerRunner
def _with_test_image(yaml_text: str) -> str:
    """The committed YAML names DEFAULT_IMAGE; a differently tagged test image replaces it (build.sh's default
    tag is that very name, so normally nothing changes)."""
    assert f"image: {DEFAULT_IMAGE}\n" in yaml_text
    return yaml_text if IMAGE == DEFAULT_IMAGE else yaml_text.replace(f"image: {DEFAULT_IMAGE}\n", f"image: {IMAGE}\n")


def _staged_inputs(pipeline_root: Path, with_hyperparameters: bool = True) -> tuple[Path, Path | None]:
    """Inputs inside the pipeline root: DockerRunner mounts only that into the task containers."""
    model = write_example_model(pipeline_root / "inputs" / contract.MODEL_FILENAME)
    hp = write_example_hyperparameters(pipeline_root / "inputs" / "hp" / contract.HYPERPARAMETERS_FILENAME)
    return model, hp if with_hyperparameters else None


def _component_pipeline():  # noqa: ANN202 - a kfp pipeline
    """components/dummy_training/component.yaml as committed, after an importer of the model."""
    from kfp import components, dsl

    text = _with_test_image((REPO / "components/dummy_training/component.yaml").read_text())
    repack = components.load_component_from_text(text)

    @dsl.pipeline
    def one_task(model_uri: str, hyperparameters_json: str):
        model = dsl.importer(artifact_uri=model_uri, artifact_class=dsl.Model, reimport=False)
        repack(model=model.output, hyperparameters_json=hyperparameters_json)

    return one_task


@pytest.mark.filterwarnings("ignore:.*have no effect in the current local runner")
def test_component_yaml_under_docker_runner(docker_runner: Path) -> None:
    """components/dummy_training/component.yaml as committed, in the image, with no entrypoint override."""
    from dummy_training.kfp.demo import collect_result

    model, _ = _staged_inputs(docker_runner)
    _component_pipeline()(model_uri=str(model), hyperparameters_json='{"epochs": 5}')
    (run_dir,) = [p for p in docker_runner.iterdir() if p.name != "inputs"]
    result = collect_result(run_dir)
    _assert_injected(_contents(result.output), {"epochs": 5})
    assert result.metadata["decision"] == contract.DECISION_INJECTED
    assert result.metadata["size"] == result.output.stat().st_size


@pytest.mark.filterwarnings("ignore:.*have no effect in the current local runner")
def test_docker_runner_needs_a_pipeline_root_the_image_can_write(engine: Engine, docker_api: None, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    """Why the README tells DockerRunner users to make the pipeline root writable (or to pass user=): a root-owned
    0755 root fails the task, which runs as UID 1000."""
    from kfp import local

    root = root_owned(engine, tmp_path / "pipeline_root")
    local.init(runner=local.DockerRunner(), pipeline_root=str(root), raise_on_error=True)
    model, _ = _staged_inputs(root)
    with pytest.raises(RuntimeError, match="FAILURE"):
        _component_pipeline()(model_uri=str(model), hyperparameters_json="{}")
    assert "Permission denied" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore:.*have no effect in the current local runner")
def test_compiled_pipeline_under_docker_runner(docker_runner: Path, capsys: pytest.CaptureFixture) -> None:
    """pipelines/dummy_training_pipeline.yaml, kubernetes branch: import, repack and check, each in the image."""
    from kfp import components

    from dummy_training.kfp.demo import collect_result, local_pipeline_text

    text = _with_test_image((REPO / "pipelines/dummy_training_pipeline.yaml").read_text())
    pipeline = components.load_component_from_text(local_pipeline_text(text))
    model, hp = _staged_inputs(docker_runner)
    pipeline(backend="kubernetes", model_uri=str(model), hyperparameters_uri=str(hp))
    (run_dir,) = [p for p in docker_runner.iterdir() if p.name != "inputs"]
    result = collect_result(run_dir)
    _assert_injected(_contents(result.output), EXAMPLE_HYPERPARAMETERS)
    assert result.metadata["decision"] == contract.DECISION_INJECTED
    assert result.checked_hyperparameters == EXAMPLE_HYPERPARAMETERS  # the check task read the artifact
    log = capsys.readouterr().out
    assert len(re.findall(r"Found image '[^']*dummy-training", log)) >= 2, log  # no pull: the local image ran


@pytest.mark.filterwarnings("ignore:.*have no effect in the current local runner")
def test_compiled_pipeline_failure_is_a_failure(docker_runner: Path, capsys: pytest.CaptureFixture) -> None:
    """No hyperparameters anywhere: the repack task exits 1 and the run is a FAILURE, not a SUCCESS (kfp's own
    run_docker_container reports 0 when the container is gone, or stops on podman's 500)."""
    from kfp import components

    from dummy_training.kfp.demo import local_pipeline_text

    text = _with_test_image((REPO / "pipelines/dummy_training_pipeline.yaml").read_text())
    pipeline = components.load_component_from_text(local_pipeline_text(text))
    model, _ = _staged_inputs(docker_runner, with_hyperparameters=False)
    with pytest.raises(RuntimeError, match="FAILURE"):
        pipeline(backend="kubernetes", model_uri=str(model))
    log = capsys.readouterr().out
    assert MISSING_HYPERPARAMETERS in log
    assert not list(docker_runner.glob("*/**/output_model")), "no output on failure"
