"""The ProcessingJob schema the ACK tests validate against (tests/data/ack/): where it came from, and the script
that derives it from the controller's CRD (run here on a CRD written for the test: the real one is not in the
repository)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import ack_reference
import yaml

from dummy_training import contract

SCRIPT = ack_reference.DATA / "derive_schema.py"


def test_schema_file_records_its_provenance_and_is_the_processing_job() -> None:
    doc = ack_reference.schema_document()
    prov = doc["provenance"]
    assert prov["repository"] == "https://github.com/aws-controllers-k8s/sagemaker-controller"
    assert prov["file"] == "config/crd/bases/sagemaker.services.k8s.aws_processingjobs.yaml"
    assert re.fullmatch(r"[0-9a-f]{64}", prov["sha256"]) and re.fullmatch(r"[0-9a-f]{40}", prov["commit"])
    assert ack_reference.SCHEMA_FILE.name == f"processingjob-schema-{prov['version']}.json"
    assert (doc["group"], doc["kind"], doc["version"]) == (contract.ACK_GROUP, contract.ACK_KIND,
                                                           contract.ACK_VERSION)
    schema = doc["openAPIV3Schema"]
    assert {"apiVersion", "kind", "metadata", "spec", "status"} <= set(schema["properties"])


def _keywords(node: Any) -> set[str]:
    """Every keyword used in a schema (not the field names under ``properties``)."""
    if not isinstance(node, dict):
        return set()
    out = set(node)
    for sub in (node.get("properties") or {}).values():
        out |= _keywords(sub)
    for key in ("items", "additionalProperties"):
        out |= _keywords(node.get(key))
    return out


def test_schema_file_has_no_descriptions() -> None:
    used = _keywords(ack_reference.crd_schema())
    assert "description" not in used
    assert {"type", "properties", "required", "items", "format", "additionalProperties"} <= used


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "names": {"kind": "Widget", "plural": "widgets"},
        "scope": "Namespaced",
        "versions": [
            {"name": "v1beta1", "served": True, "storage": False,
             "schema": {"openAPIV3Schema": {"type": "object", "description": "old"}}},
            {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                "type": "object",
                "description": "A widget.",
                "properties": {
                    "spec": {
                        "type": "object",
                        "description": "Desired state.",
                        "required": ["size"],
                        "properties": {
                            "description": {"type": "string", "description": "a field named description"},
                            "size": {"type": "integer", "format": "int64", "minimum": 1},
                            "colour": {"type": "string", "enum": ["red", "blue"]},
                            "labels": {"type": "object", "additionalProperties": {"type": "string",
                                                                                  "description": "a value"}},
                            "port": {"x-kubernetes-int-or-string": True, "description": "number or name"},
                            "parts": {"type": "array", "x-kubernetes-list-type": "atomic",
                                      "items": {"type": "object", "description": "a part",
                                                "x-kubernetes-preserve-unknown-fields": True}},
                        },
                    },
                },
            }}},
        ],
    },
}


def _derive(tmp_path: Path, crd: Any, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "example.com_widgets.yaml"
    path.write_text(yaml.safe_dump(crd))
    return subprocess.run([sys.executable, str(SCRIPT), str(path), *args], capture_output=True, text=True,
                          check=False)


def test_derive_script_keeps_the_structure_and_drops_only_descriptions(tmp_path: Path) -> None:
    run = _derive(tmp_path, CRD, "--version", "v0.1.0", "--commit", "a" * 40)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    crd_bytes = (tmp_path / "example.com_widgets.yaml").read_bytes()
    assert out["provenance"] == {
        "repository": "https://github.com/aws-controllers-k8s/sagemaker-controller", "version": "v0.1.0",
        "commit": "a" * 40, "file": "config/crd/bases/example.com_widgets.yaml",
        "sha256": hashlib.sha256(crd_bytes).hexdigest(),
        "derived_by": "tests/data/ack/derive_schema.py (descriptions dropped, nothing else changed)"}
    assert (out["group"], out["kind"], out["version"]) == ("example.com", "Widget", "v1")  # the storage version
    spec = out["openAPIV3Schema"]["properties"]["spec"]
    assert out["openAPIV3Schema"] == {"type": "object", "properties": {"spec": spec}}
    assert spec == {
        "type": "object",
        "required": ["size"],
        "properties": {
            "description": {"type": "string"},  # a field may be called description: kept, its own text dropped
            "size": {"type": "integer", "format": "int64", "minimum": 1},
            "colour": {"type": "string", "enum": ["red", "blue"]},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "port": {"x-kubernetes-int-or-string": True},
            "parts": {"type": "array", "x-kubernetes-list-type": "atomic",
                      "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
        },
    }


def test_derive_script_takes_a_named_version_and_refuses_what_is_not_a_crd(tmp_path: Path) -> None:
    run = _derive(tmp_path, CRD, "--version", "v0.1.0", "--api-version", "v1beta1")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["version"] == "v1beta1" and out["openAPIV3Schema"] == {"type": "object"}
    assert "commit" not in out["provenance"]

    run = _derive(tmp_path, {"kind": "ConfigMap"}, "--version", "v0.1.0")
    assert run.returncode != 0 and "not a CustomResourceDefinition" in run.stderr and run.stdout == ""
    assert _derive(tmp_path, CRD).returncode == 2  # --version is required: the provenance must name the release
