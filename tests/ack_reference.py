"""Access to the ACK SageMaker controller reference data (the real ProcessingJob CRD, samples, testdata).

The files live outside the project (``<repo>/../shared/reference/ack-sagemaker-controller``, override with
``DUMMY_TRAINING_ACK_REFERENCE``); tests that need them skip when they are absent.
"""

from __future__ import annotations

import copy
import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ENV = "DUMMY_TRAINING_ACK_REFERENCE"
DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "reference" / "ack-sagemaker-controller"
CRD_FILE = "sagemaker.services.k8s.aws_processingjobs.yaml"


def reference_dir() -> Path:
    path = Path(os.environ.get(ENV) or DEFAULT)
    if not (path / CRD_FILE).is_file():
        pytest.skip(f"ACK reference data not found at {path} (set {ENV})")
    return path


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((reference_dir() / name).read_text())


def fixture(name: str) -> dict[str, Any]:
    """A controller testdata file, e.g. ``readone__observed__completed.yaml``."""
    return load(f"testdata/{name}")


@cache
def _crd_schema(path: str) -> dict[str, Any]:
    crd = yaml.safe_load(Path(path).read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    return version["schema"]["openAPIV3Schema"]


def crd_schema() -> dict[str, Any]:
    return copy.deepcopy(_crd_schema(str(reference_dir() / CRD_FILE)))


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
