"""The KFP surface without running it: compiled YAML drift, YAML load-back, contract/CLI/component alignment."""

from __future__ import annotations

import argparse
import inspect
import io
import logging
import re
import shutil
from pathlib import Path

import pytest
import yaml
from kfp import components

from dummy_training import cli, contract
from dummy_training.kfp import compile as compile_mod
from dummy_training.kfp.components import DEFAULT_IMAGE, IMAGE_ENV

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def default_image(monkeypatch: pytest.MonkeyPatch) -> str:
    """Compile with the image the committed YAMLs use, whatever the developer's environment says."""
    monkeypatch.setenv(IMAGE_ENV, DEFAULT_IMAGE)
    return DEFAULT_IMAGE


@pytest.fixture(scope="module")
def compiled() -> dict[Path, tuple[compile_mod.Target, str]]:
    """Every target of the repository, freshly compiled once with the default image: path -> (target, text)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(IMAGE_ENV, DEFAULT_IMAGE)
        return {REPO / t.path: (t, compile_mod.compile_text(t.obj)) for t in compile_mod.targets()}


def _repack_parser() -> argparse.ArgumentParser:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[contract.REPACK_COMMAND]


# ------------------------------------------------------------------------------------------- drift
def test_every_committed_yaml_matches_a_fresh_compile(compiled: dict) -> None:
    assert compiled, "nothing discovered"
    drifted = [str(t.path) for path, (t, text) in compiled.items()
               if not path.is_file() or compile_mod.normalized(path.read_text()) != compile_mod.normalized(text)]
    assert not drifted, f"run `dummy-training compile` and commit: {drifted}"


def test_discovery_finds_every_component_folder_and_pipeline(compiled: dict) -> None:
    paths = {str(t.path) for t, _ in compiled.values()}
    for folder in sorted((REPO / "components").iterdir()):
        if (folder / "component.yaml").exists():
            assert f"components/{folder.name}/component.yaml" in paths
    package = REPO / "container" / "dummy_training" / "kfp" / "pipelines"
    stems = [py.stem for py in sorted(package.glob("*.py")) if not py.name.startswith("_")]
    assert stems == ["dummy_training_parallel_pipeline", "dummy_training_pipeline"]
    for stem in stems:
        assert f"pipelines/{stem}.yaml" in paths
        assert f"{compile_mod.PACKAGE_PIPELINES_DIR}/{stem}.yaml" in paths
    assert not list((REPO / "pipelines").glob("*.py")), "pipeline definitions live in the package"
    assert "components/dummy_training/component.yaml" in paths
    assert "components/dummy_training_s3/component.yaml" in paths


def test_compile_command_reports_drift_and_repairs_it(tmp_path: Path, default_image: str,
                                                     capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "repo"
    for d in ("components", "pipelines", "container"):
        shutil.copytree(REPO / d, root / d, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    victim = root / "components" / "dummy_training" / "component.yaml"
    victim.write_text(victim.read_text().replace("dummy-training:", "someone-else:"))
    (root / "pipelines" / "dummy_training_parallel_pipeline.yaml").unlink()

    assert cli.main(["compile", "--check", "--root", str(root)]) == 1
    captured = capsys.readouterr()
    assert "2 YAML/README file(s) differ from a fresh compile" in captured.err
    assert "DRIFTED     components/dummy_training/component.yaml" in captured.out
    assert "MISSING     pipelines/dummy_training_parallel_pipeline.yaml" in captured.out
    assert "someone-else:" in victim.read_text(), "--check must not write"

    assert cli.main(["compile", "--root", str(root)]) == 0
    wrote = [line for line in capsys.readouterr().out.splitlines() if line.startswith("wrote")]
    assert len(wrote) == 2
    for path in ("components/dummy_training/component.yaml", "pipelines/dummy_training_parallel_pipeline.yaml"):
        assert compile_mod.normalized((root / path).read_text()) == compile_mod.normalized((REPO / path).read_text())

    assert cli.main(["compile", "--check", "--root", str(root)]) == 0


def _images(text: str) -> list[str]:
    """Every container image a compiled component or pipeline YAML names (a pipeline's second document is its
    platform spec)."""
    return [e["container"]["image"] for doc in yaml.safe_load_all(text) if "deploymentSpec" in doc
            for e in doc["deploymentSpec"]["executors"].values() if "container" in e]  # not the importers


def test_compile_for_another_registry_into_a_directory_leaves_the_tracked_files_alone(
        tmp_path: Path, default_image: str, capsys: pytest.CaptureFixture) -> None:
    tracked = {p: p.read_bytes() for p in sorted(REPO.glob("components/*/component.yaml"))
               + sorted(REPO.glob("pipelines/*.yaml"))
               + sorted((REPO / compile_mod.PACKAGE_PIPELINES_DIR).glob("*.yaml"))}
    image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/platform/repack:7.1-corp"
    out = tmp_path / "yaml"
    assert cli.main(["compile", "--root", str(REPO), "--image", image, "--output-dir", str(out)]) == 0
    assert {p: p.read_bytes() for p in tracked} == tracked, "the tracked YAML changed"
    written = sorted(p.relative_to(out) for p in out.rglob("*.yaml"))
    package_copies = REPO / compile_mod.PACKAGE_PIPELINES_DIR
    assert written == sorted(p.relative_to(REPO) for p in tracked if package_copies not in p.parents)
    for rel in written:
        text = (out / rel).read_text()
        assert _images(text) and set(_images(text)) == {image}, rel
        assert DEFAULT_IMAGE not in text, rel  # no other reference to the default image either
    # the same YAML as the tracked files but for the image, and it loads back
    for rel in written:
        fresh = (out / rel).read_text().replace(image, DEFAULT_IMAGE)
        assert compile_mod.normalized(fresh) == compile_mod.normalized((REPO / rel).read_text()), rel
        components.load_component_from_file(str(out / rel))
    capsys.readouterr()
    # and the checkout is still up to date, in this very process (the image did not stick)
    assert cli.main(["compile", "--check", "--root", str(REPO)]) == 0
    assert "DRIFTED" not in capsys.readouterr().out
    assert cli.main(["compile", "--check", "--output-dir", str(out), "--root", str(REPO)]) == 2


def _with_sdk_version(text: str, version: str) -> str:
    lines = text.splitlines(keepends=True)
    (i,) = [n for n, line in enumerate(lines) if line.startswith("sdkVersion: kfp-")]
    lines[i] = f"sdkVersion: kfp-{version}\n"
    return "".join(lines)


def test_normalized_ignores_only_the_kfp_patch_release() -> None:
    text = (REPO / "components" / "dummy_training" / "component.yaml").read_text()
    n = compile_mod.normalized
    assert n(_with_sdk_version(text, "2.17.0")) == n(_with_sdk_version(text, "2.17.3")) == n(
        _with_sdk_version(text, "2.17.12rc1"))
    assert n(_with_sdk_version(text, "2.17.0")) != n(_with_sdk_version(text, "2.18.0"))
    assert n(text.replace("dummy-training:", "someone-else:")) != n(text)
    assert n(text).count("sdkVersion: kfp-2.17.*") == 1 and n(n(text)) == n(text)


def test_check_passes_a_yaml_differing_only_in_the_kfp_patch_release(tmp_path: Path, default_image: str,
                                                                   capsys: pytest.CaptureFixture) -> None:
    """Committed with kfp 2.17.x, checked with 2.17.y: up to date. Any other difference is drift."""
    root = tmp_path / "repo"
    for d in ("components", "pipelines", "container"):
        shutil.copytree(REPO / d, root / d, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    patch_only = root / "components" / "dummy_training" / "component.yaml"
    patch_only.write_text(_with_sdk_version(patch_only.read_text(), "2.17.0"))
    patch_and_more = root / "components" / "dummy_training_s3" / "component.yaml"
    patch_and_more.write_text(_with_sdk_version(patch_and_more.read_text(), "2.17.0").replace(
        "dummy-training:", "someone-else:"))
    minor = root / "pipelines" / "dummy_training_pipeline.yaml"
    minor.write_text(_with_sdk_version(minor.read_text(), "2.16.0"))

    assert cli.main(["compile", "--check", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "up to date  components/dummy_training/component.yaml" in out
    assert "DRIFTED     components/dummy_training_s3/component.yaml" in out
    assert "DRIFTED     pipelines/dummy_training_pipeline.yaml" in out
    assert sum(line.startswith("DRIFTED") for line in out.splitlines()) == 2

    assert cli.main(["compile", "--root", str(root)]) == 0
    assert "sdkVersion: kfp-2.17.0\n" in patch_only.read_text()  # up to date: left as it was, no churn
    import kfp

    for rewritten in (patch_and_more, minor):  # written files record the kfp that compiled them
        assert f"sdkVersion: kfp-{kfp.__version__}\n" in rewritten.read_text()


def test_image_is_overridable_at_compile_time(monkeypatch: pytest.MonkeyPatch) -> None:
    custom = "123456789012.dkr.ecr.us-east-1.amazonaws.com/dummy-training:9.9.9"
    try:
        monkeypatch.setenv(IMAGE_ENV, custom)
        native = compile_mod.discover_components(reload=True)["dummy_training"][1]
        text = compile_mod.compile_text(native)
        assert f"image: {custom}" in text
        assert DEFAULT_IMAGE not in text
    finally:
        monkeypatch.setenv(IMAGE_ENV, DEFAULT_IMAGE)
        compile_mod.discover_components(reload=True)  # re-import the components with the default image
    from dummy_training.kfp.components import IMAGE

    assert IMAGE == DEFAULT_IMAGE


# ---------------------------------------------------------------------------------------- load back
def _committed_yamls() -> list[Path]:
    return sorted(REPO.glob("components/*/component.yaml")) + sorted(REPO.glob("pipelines/*.yaml"))


@pytest.mark.parametrize("path", _committed_yamls(), ids=lambda p: str(p.relative_to(REPO)))
def test_committed_yaml_loads_back_with_the_python_interface(path: Path, compiled: dict) -> None:
    loaded = components.load_component_from_file(str(path))
    spec = compiled[path][0].obj.component_spec
    assert loaded.name == spec.name
    assert {k: (v.type, v.optional) for k, v in loaded.component_spec.inputs.items()} == {
        k: (v.type, v.optional) for k, v in spec.inputs.items()
    }
    assert set(loaded.component_spec.outputs or {}) == set(spec.outputs or {})


def test_component_yamls_run_our_image_without_installing_kfp() -> None:
    for path in sorted(REPO.glob("components/*/component.yaml")):
        doc = yaml.safe_load(path.read_text())
        for executor in doc["deploymentSpec"]["executors"].values():
            container = executor["container"]
            assert container["image"] == DEFAULT_IMAGE, path
            assert "pip install" not in " ".join(container["command"]), path


# ------------------------------------------------------------------------------------ contract alignment
def test_native_component_names_are_the_contract_and_the_repack_cli_flags() -> None:
    from dummy_training.kfp.components.native import OUTPUT_ARTIFACT, dummy_training

    spec = dummy_training.component_spec
    repack_names = [p.name for p in contract.REPACK_INPUTS]
    assert sorted(spec.inputs) == sorted(repack_names)
    assert spec.inputs[contract.MODEL.name].type.startswith("system.Model")
    assert not spec.inputs[contract.MODEL.name].optional
    assert spec.inputs[contract.HYPERPARAMETERS.name].type.startswith("system.Artifact")
    assert spec.inputs[contract.HYPERPARAMETERS.name].optional
    assert spec.inputs[contract.HYPERPARAMETERS_JSON.name].type == "String"
    assert spec.inputs[contract.HYPERPARAMETERS_JSON.name].optional
    assert sorted(spec.outputs) == sorted([OUTPUT_ARTIFACT, contract.OUTPUT_REPORT, contract.OUTPUT_METRICS])
    assert spec.outputs[OUTPUT_ARTIFACT].type.startswith("system.Model")
    assert OUTPUT_ARTIFACT not in spec.inputs


def test_s3_component_names_are_the_contract_and_the_repack_cli_flags() -> None:
    from dummy_training.kfp.components.native import dummy_training_s3

    spec = dummy_training_s3.component_spec
    expected = [p.name for p in (*contract.REPACK_INPUTS, contract.OUTPUT_URI, contract.ENDPOINT_URL)]
    assert sorted(spec.inputs) == sorted(expected)
    assert all(v.type == "String" for v in spec.inputs.values())
    required = sorted(k for k, v in spec.inputs.items() if not v.optional)
    assert required == sorted([contract.MODEL.name, contract.OUTPUT_URI.name])
    assert sorted(spec.outputs) == sorted([contract.OUTPUT_MODEL_S3_URI, contract.OUTPUT_MODEL, contract.OUTPUT_REPORT,
                                           contract.OUTPUT_METRICS])


def test_every_component_input_is_a_repack_cli_flag_and_a_run_repack_argument() -> None:
    from dummy_training.kfp.compile import discover_components
    from dummy_training.step.repack import run_repack

    by_dest = {a.dest: a for a in _repack_parser()._actions}
    run_repack_params = inspect.signature(run_repack).parameters
    contract_params = {p.name: p for p in vars(contract).values() if isinstance(p, contract.Param)}
    for folder, (_module, comp) in discover_components().items():
        if folder not in ("dummy_training", "dummy_training_s3"):
            continue  # launcher components (sagemaker, ack) have their own parameters and their own tests
        for name in comp.component_spec.inputs:
            assert name in contract_params, f"{folder}: input {name!r} is not a contract.Param"
            action = by_dest.get(name)
            assert action is not None, f"{folder}: input {name!r} is not a `dummy-training repack` option"
            assert contract_params[name].flag in action.option_strings
            assert name in run_repack_params, f"{folder}: input {name!r} is not a run_repack argument"


def test_component_docstrings_describe_every_input() -> None:
    from dummy_training.kfp.compile import discover_components

    for folder, (_module, comp) in discover_components().items():
        for name, spec in comp.component_spec.inputs.items():
            assert spec.description, f"{folder}: input {name!r} has no description (add it to the docstring Args)"


def test_component_modules_follow_the_convention() -> None:
    """Every module of kfp_components either exposes COMPONENTS (folder -> component) or is a helper."""
    from kfp.dsl.base_component import BaseComponent

    from dummy_training.kfp.compile import component_modules

    for module in component_modules():
        comps = getattr(module, "COMPONENTS", None)
        if comps is None:
            continue
        assert isinstance(comps, dict) and comps, module.__name__
        for folder, comp in comps.items():
            assert isinstance(comp, BaseComponent), (module.__name__, folder)
            assert folder.isidentifier(), f"{module.__name__}: folder name {folder!r}"
            assert (REPO / "components" / folder / "component.yaml").is_file(), "run `dummy-training compile`"


def test_native_component_folders_have_a_readme_naming_every_input_and_output() -> None:
    from dummy_training.kfp.components.native import COMPONENTS

    for folder, comp in COMPONENTS.items():
        readme = (REPO / "components" / folder / "README.md").read_text()
        for name in [*comp.component_spec.inputs, *(comp.component_spec.outputs or {})]:
            assert f"`{name}`" in readme, f"components/{folder}/README.md does not document {name!r}"


# ------------------------------------------------------------------------------------------ check step
def test_check_step_reads_root_hyperparameters_and_fails_without(tmp_path: Path) -> None:
    import gzip
    import io
    import tarfile

    from dummy_training.errors import InputNotFoundError, InvalidInputError
    from dummy_training.kfp.example_model import OWN_HYPERPARAMETERS, write_example_model
    from dummy_training.kfp.runtime import check_archive, check_model

    def archive(path: Path, members: dict[str, bytes]) -> Path:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        path.write_bytes(gzip.compress(buf.getvalue()))
        return path

    with_hp = write_example_model(tmp_path / "a" / "model.tar.gz", with_hyperparameters=True)
    assert check_archive(with_hp) == OWN_HYPERPARAMETERS
    assert check_archive(with_hp.parent) == OWN_HYPERPARAMETERS  # a directory holding model.tar.gz
    assert check_archive(archive(tmp_path / "dot.tar.gz", {"./hyperparameters.json": b'{"a": 1}'})) == {"a": 1}
    with pytest.raises(InputNotFoundError, match="no root hyperparameters.json among 9 members"):
        check_archive(write_example_model(tmp_path / "b" / "model.tar.gz"))
    with pytest.raises(InputNotFoundError, match="no root"):  # nested is not root
        check_archive(archive(tmp_path / "nested.tar.gz", {"sub/hyperparameters.json": b"{}"}))
    with pytest.raises(InvalidInputError, match="not a JSON object"):
        check_archive(archive(tmp_path / "list.tar.gz", {"hyperparameters.json": b"[1, 2]"}))
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(with_hp.read_bytes()[:-100])
    with pytest.raises(InvalidInputError, match="unreadable"):
        check_archive(truncated)
    with pytest.raises(SystemExit) as info:  # the step's body fails the task with the CLI's exit code
        check_model(str(tmp_path / "missing"))
    assert info.value.code == 1


def test_component_errors_name_the_components_inputs() -> None:
    from dummy_training.kfp import runtime
    from dummy_training.step.resolve import hyperparameters_search_description

    text = runtime.component_message(f"none given; searched at: {hyperparameters_search_description()}",
                                     runtime.NATIVE_INPUTS)
    assert text == "none given; searched at: input `hyperparameters`, input `hyperparameters_json`"
    launcher = runtime.component_message("--role-arn is not an IAM role ARN; --no-logs; "
                                         "--pretrained-model-path x", runtime.LAUNCHER_INPUTS)
    assert launcher == ("input `role_arn` is not an IAM role ARN; --no-logs; input `model` x")


# ------------------------------------------------------------------------------------ generated READMEs
def _copy_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for d in ("components", "pipelines", "container"):
        shutil.copytree(REPO / d, root / d, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return root


def test_readme_blocks_are_drift_checked_and_regenerated(tmp_path: Path, default_image: str,
                                                         capsys: pytest.CaptureFixture) -> None:
    root = _copy_repo(tmp_path)
    readme = root / "components" / "dummy_training" / "README.md"
    original = readme.read_text()
    readme.write_text(original.replace("| `hyperparameters_json` | `str` | `\"\"` |", "| `hyperparameters_json` | "
                                       "`str` | `\"{}\"` |"))
    assert cli.main(["compile", "--check", "--root", str(root)]) == 1
    assert "DRIFTED     components/dummy_training/README.md" in capsys.readouterr().out
    assert cli.main(["compile", "--root", str(root)]) == 0
    assert readme.read_text() == original
    # a README without one of the blocks: one line naming it
    pipelines = root / "pipelines" / "README.md"
    pipelines.write_text(pipelines.read_text().replace("<!-- END GENERATED parameters dummy_training_pipeline -->",
                                                       ""))
    assert cli.main(["compile", "--check", "--root", str(root)]) == 2
    assert "has no generated block 'parameters dummy_training_pipeline'" in capsys.readouterr().err


def _block(text: str, key: str) -> str:
    return text.split(f"<!-- BEGIN GENERATED {key} -->", 1)[1].split(f"<!-- END GENERATED {key} -->", 1)[0]


def test_component_readmes_document_every_input_output_image_and_local_runner() -> None:
    for folder, (_module, comp) in compile_mod.discover_components().items():
        text = (REPO / "components" / folder / "README.md").read_text()
        spec = comp.component_spec
        inputs = _block(text, "inputs")
        for name in spec.inputs:
            assert f"| `{name}` |" in inputs, (folder, name)
        for name in spec.outputs or {}:
            assert f"| `{name}` |" in _block(text, "outputs"), (folder, name)
        assert "use_venv=False" in _block(text, "local"), folder
        image = _block(text, "image")
        if "image_uri" in spec.inputs:  # a launcher: the job's image, staged needs the root variant
            assert "-root" in image and "Staged jobs" in image, folder
            # and every example in the page that gives a staged job an image gives it the root image
            for line in text.splitlines():
                if ("--image-uri " in line or "image_uri=" in line) and "dummy-training:" in line:
                    assert re.search(r"dummy-training:[\w.]+-root", line), (folder, line)


def test_every_pipeline_parameter_is_documented() -> None:
    text = (REPO / "pipelines" / "README.md").read_text()
    for stem, (_src, pipeline) in compile_mod.discover_pipelines().items():
        block = _block(text, f"parameters {stem}")
        for name in pipeline.component_spec.inputs:
            assert f"| `{name}` |" in block, (stem, name)
    for name in ("image_uri", "role_arn", "region"):
        assert f"| `{name}` |" in _block(text, "parameters dummy_training_pipeline")


def test_output_model_points_at_the_s3_object_only_where_the_runner_accepts_it() -> None:
    """kfp.local takes any uri; KFP's launcher uploads to it and fails the task unless it is under the pipeline
    root (backend/src/v2/component/launcher_v2.go: mergeRuntimeArtifacts, then bucketConfig.KeyFromURI)."""
    from types import SimpleNamespace

    from dummy_training.kfp.runtime import point_at_s3

    local = SimpleNamespace(uri="/tmp/root/dummy-training-pipeline/run-1/sagemaker-job/output_model")
    assert point_at_s3(local, "s3://models/runs/job/output/model.tar.gz")
    assert local.uri == "s3://models/runs/job/output/model.tar.gz"
    under = SimpleNamespace(uri="s3://ml/v2/artifacts/dummy-training-pipeline/run-1/task-2/output_model")
    assert point_at_s3(under, "s3://ml/v2/artifacts/dummy-training-pipeline/runs/job/output/model.tar.gz")
    elsewhere = SimpleNamespace(uri="minio://mlpipeline/v2/artifacts/dummy-training-pipeline/run-1/t/output_model")
    logged = io.StringIO()
    handler = logging.StreamHandler(logged)
    logging.getLogger("dummy_training.kfp").addHandler(handler)
    try:
        assert not point_at_s3(elsewhere, "s3://models/runs/job/output/model.tar.gz")
    finally:
        logging.getLogger("dummy_training.kfp").removeHandler(handler)
    assert elsewhere.uri.startswith("minio://mlpipeline/") and "refuses an output artifact" in logged.getvalue()


def test_the_tracked_yaml_is_never_rewritten_for_another_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture) -> None:
    """``DUMMY_TRAINING_IMAGE=... dummy-training compile`` (or ``--image`` without ``--output-dir``) used to rewrite
    the tracked YAML for another registry, which ``compile --check`` then called drift: now one line pointing at
    ``--output-dir``, and nothing written."""
    custom = "registry.example.com/dt:1"
    before = {p: p.read_bytes() for p in sorted(REPO.glob("components/*/component.yaml"))}
    monkeypatch.setenv(IMAGE_ENV, custom)
    assert cli.main(["compile", "--root", str(REPO)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"not {custom} (from ${IMAGE_ENV})" in line and f"--image {custom} --output-dir DIR" in line
    monkeypatch.setenv(IMAGE_ENV, DEFAULT_IMAGE)
    assert cli.main(["compile", "--root", str(REPO), "--image", custom]) == 2
    assert f"not {custom} (from --image)" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in before} == before


def test_the_checkout_is_found_from_anywhere_when_the_package_is_imported_from_it(tmp_path: Path) -> None:
    """An editable install (or PYTHONPATH=container): `compile --check` run outside the checkout finds it."""
    assert compile_mod.find_root(tmp_path) == REPO


def test_every_component_has_its_metadata_in_the_pipelines_components_schema() -> None:
    """components/<name>/metadata.yaml as kubeflow/pipelines-components (KEP-913) validates it: name, tier,
    stability, dependencies.kubeflow with a Pipelines version range, external_services, tags, an RFC 3339
    lastVerified; and what it says about KFP is the package's own floor."""
    from datetime import datetime

    from dummy_training.kfp.components import KFP_BACKEND_VERSIONS

    folders = sorted(p.parent.name for p in REPO.glob("components/*/component.yaml"))
    assert folders == sorted(compile_mod.discover_metadata())
    for folder in folders:
        meta = yaml.safe_load((REPO / "components" / folder / "metadata.yaml").read_text())
        assert meta["name"] == folder and meta["tier"] == "third_party"
        assert meta["stability"] in ("alpha", "beta", "stable")
        assert meta["dependencies"]["kubeflow"] == [{"name": "Pipelines", "version": KFP_BACKEND_VERSIONS}]
        assert all(s["name"] for s in meta["dependencies"]["external_services"])
        assert meta["tags"] and all(isinstance(t, str) and t for t in meta["tags"])
        assert datetime.fromisoformat(meta["lastVerified"].replace("Z", "+00:00")).tzinfo is not None
        assert (REPO / "components" / folder / meta["links"]["documentation"].split("/", 2)[2]).is_file()
