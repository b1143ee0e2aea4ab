"""One source of truth: every component, every CLI sub-command and the remote job agree with ``contract``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from kfp.components import load_component_from_file

from dummy_training import cli, contract

REPO = Path(__file__).resolve().parent.parent
COMPONENT_YAMLS = sorted((REPO / "components").glob("*/component.yaml"))

#: Every component also writes the report a person reads and the metrics the KFP UI compares.
REPORTED = {contract.OUTPUT_REPORT, contract.OUTPUT_METRICS}
EXPECTED_OUTPUTS = {
    "dummy_training": {contract.OUTPUT_MODEL, *REPORTED},
    "dummy_training_s3": {contract.OUTPUT_MODEL, contract.OUTPUT_MODEL_S3_URI, *REPORTED},
    "sagemaker_dummy_training": {contract.OUTPUT_MODEL, contract.OUTPUT_MODEL_S3_URI, contract.OUTPUT_JOB_ARN,
                                 *REPORTED},
    "ack_dummy_training": {contract.OUTPUT_MODEL, contract.OUTPUT_MODEL_S3_URI, contract.OUTPUT_JOB_ARN, *REPORTED},
}
#: The KFP artifact types of the report and the metrics.
REPORT_TYPES = {contract.OUTPUT_REPORT: "system.Markdown", contract.OUTPUT_METRICS: "system.Metrics"}


def test_every_component_folder_is_known() -> None:
    assert {p.parent.name for p in COMPONENT_YAMLS} == set(EXPECTED_OUTPUTS)


@pytest.mark.parametrize("yaml_path", COMPONENT_YAMLS, ids=lambda p: p.parent.name)
def test_component_names_come_from_the_contract(yaml_path: Path) -> None:
    spec = load_component_from_file(str(yaml_path)).component_spec
    inputs, outputs = set(spec.inputs or {}), set(spec.outputs or {})
    assert outputs == EXPECTED_OUTPUTS[yaml_path.parent.name]
    for name, schema in REPORT_TYPES.items():
        assert spec.outputs[name].type.startswith(schema), (yaml_path.parent.name, name, spec.outputs[name].type)
    for param in contract.REPACK_INPUTS:
        assert param.name in inputs, f"{yaml_path.parent.name} lacks input {param.name}"
    assert (REPO / "components" / yaml_path.parent.name / "README.md").is_file()


def _flags(parser: argparse.ArgumentParser, *path: str) -> set[str]:
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return {flag for action in parser._actions for flag in action.option_strings}


@pytest.mark.parametrize("command", [("repack",), ("sagemaker",), ("ack", "run"), ("ack", "manifest")])
def test_every_command_takes_the_contract_flags(command: tuple[str, ...]) -> None:
    flags = _flags(cli.build_parser(), *command)
    for param in contract.REPACK_INPUTS:
        assert param.flag in flags, f"{' '.join(command)} lacks {param.flag}"


def test_repack_flags_match_the_contract_parameters() -> None:
    flags = _flags(cli.build_parser(), "repack")
    for param in (*contract.REPACK_INPUTS, contract.OUTPUT_DIR, contract.OUTPUT_URI, contract.ENDPOINT_URL):
        assert param.flag in flags


def test_the_jobs_report_channel_comes_from_the_contract(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The job's own report: the repack flags it is written with, and its directory under the (re-rootable)
    /opt/ml, beside the model's output directory."""
    flags = _flags(cli.build_parser(), "repack")
    assert {contract.REPORT_FLAG, contract.RESULT_JSON_FLAG} <= flags
    monkeypatch.setenv(contract.OPT_ML_ROOT_ENV, str(tmp_path))
    assert contract.processing_report_dir() == tmp_path / "processing" / "output" / "report"
    assert contract.processing_report_dir().parent == contract.processing_output_dir().parent
    rel = contract.processing_report_dir().relative_to(tmp_path)
    assert f"{contract.DEFAULT_OPT_ML_ROOT}/{rel}" == contract.CONTAINER_REPORT_DIR
    assert contract.PROCESSING_OUTPUT_REPORT != contract.PROCESSING_OUTPUT_MODEL
