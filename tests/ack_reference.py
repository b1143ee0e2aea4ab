"""The ACK SageMaker controller's ProcessingJob, as the tests know it: data the project carries in tests/data/ack/.

- ``processingjob-schema-v1.9.1.json``: the CRD's ``openAPIV3Schema`` (aws-controllers-k8s/sagemaker-controller
  v1.9.1) without descriptions, made by ``tests/data/ack/derive_schema.py``, which records its provenance;
- ``status/<state>.yaml``: ProcessingJob resources as the controller reports them, one per state the launcher
  handles (written for this project, modelled on the controller's testdata);
- ``processing-job.yaml``: a hand-written manifest, the positive control of the schema checks.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml

DATA = Path(__file__).resolve().parent / "data" / "ack"
SCHEMA_FILE = DATA / "processingjob-schema-v1.9.1.json"
STATUS_DIR = DATA / "status"


def load(name: str) -> dict[str, Any]:
    """A YAML document of tests/data/ack/, e.g. ``processing-job.yaml``."""
    return yaml.safe_load((DATA / name).read_text())


def fixture(name: str) -> dict[str, Any]:
    """A ProcessingJob resource in one state, e.g. ``completed.yaml`` (a fresh copy: change it freely)."""
    return yaml.safe_load((STATUS_DIR / name).read_text())


def fixture_names() -> list[str]:
    return sorted(p.name for p in STATUS_DIR.glob("*.yaml"))


@cache
def _schema_document() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text())


def schema_document() -> dict[str, Any]:
    """The derived schema file: ``provenance``, ``group``, ``kind``, ``version``, ``openAPIV3Schema``."""
    return copy.deepcopy(_schema_document())


def crd_schema() -> dict[str, Any]:
    return schema_document()["openAPIV3Schema"]


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with unknown fields forbidden wherever it lists properties.

    The API server does not reject unknown fields of a structural CRD: it silently prunes them. A misspelt
    field (``imageUri`` for ``imageURI``) would vanish from the job without an error, so our manifests are
    checked with pruning turned into failure."""
    out = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(out)
    return out


def validator(schema: dict[str, Any]) -> Any:
    import jsonschema

    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def errors(manifest: dict[str, Any], *, strict_fields: bool = True) -> list[str]:
    schema = crd_schema()
    if strict_fields:
        schema = strict(schema)
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in validator(schema).iter_errors(manifest))


def ack_to_request(spec: dict[str, Any]) -> dict[str, Any]:
    """An ACK ProcessingJob ``spec`` back in boto3's casing, matched case-insensitively against botocore's own
    model of CreateProcessingJob: a reverse mapping independent of the converter in ``dummy_training.ack.manifest``
    (an unknown field raises KeyError)."""
    return _reverse(spec, create_processing_job_shape())


@cache
def create_processing_job_shape() -> Any:
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    return model.operation_model("CreateProcessingJob").input_shape


def _reverse(value: Any, shape: Any) -> Any:
    if shape.type_name == "structure":
        members = {name.lower(): (name, member) for name, member in shape.members.items()}
        out = {}
        for key, item in value.items():
            name, member = members[key.lower()]
            out[name] = _reverse(item, member)
        return out
    if shape.type_name == "list":
        return [_reverse(item, shape.member) for item in value]
    if shape.type_name == "map":
        return {key: _reverse(item, shape.value) for key, item in value.items()}
    return value
