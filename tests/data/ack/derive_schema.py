"""Derive the ProcessingJob schema the ACK tests validate against, from the ACK SageMaker controller's CRD.

    python tests/data/ack/derive_schema.py CRD.yaml --version v1.9.1 [--commit SHA] \
        > tests/data/ack/processingjob-schema-v1.9.1.json

CRD.yaml is ``config/crd/bases/sagemaker.services.k8s.aws_processingjobs.yaml`` of
https://github.com/aws-controllers-k8s/sagemaker-controller (Apache-2.0) at the release given by ``--version``.
The output keeps the served version's ``openAPIV3Schema`` as it is (field names, types, ``required``, enums,
formats, ``x-kubernetes-*`` and every other validation keyword) without its ``description`` texts, and records
where it came from: repository, version, commit, file and the sha256 of the input. The tests read only the
output; the CRD itself is not part of this repository.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

REPOSITORY = "https://github.com/aws-controllers-k8s/sagemaker-controller"
CRD_DIR = "config/crd/bases"
DROPPED = frozenset({"description"})
#: keywords whose value is one schema, a map of name -> schema, or a list of schemas
ONE_SCHEMA = frozenset({"items", "additionalProperties", "not", "additionalItems"})
SCHEMA_MAP = frozenset({"properties", "patternProperties", "definitions"})
SCHEMA_LIST = frozenset({"allOf", "anyOf", "oneOf"})


def strip(node: Any) -> Any:
    """A schema node without ``description``; map keys under ``properties`` are field names and all kept."""
    if not isinstance(node, dict):
        return node  # additionalProperties: true/false
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in DROPPED:
            continue
        if key in ONE_SCHEMA:
            out[key] = strip(value)
        elif key in SCHEMA_MAP:
            out[key] = {name: strip(sub) for name, sub in value.items()}
        elif key in SCHEMA_LIST:
            out[key] = [strip(sub) for sub in value]
        else:
            out[key] = value  # type, format, required, enum, default, pattern, x-kubernetes-*, ...
    return out


def derive(crd_bytes: bytes, *, file: str, version: str, commit: str | None = None,
           api_version: str | None = None) -> dict[str, Any]:
    crd = yaml.safe_load(crd_bytes)
    if crd.get("kind") != "CustomResourceDefinition":
        raise SystemExit(f"not a CustomResourceDefinition: kind {crd.get('kind')!r}")
    spec = crd["spec"]
    versions = spec["versions"]
    chosen = ([v for v in versions if v["name"] == api_version] if api_version
              else [v for v in versions if v.get("storage")])
    if len(chosen) != 1:
        raise SystemExit(f"expected one {'version ' + api_version if api_version else 'storage version'}, "
                         f"found {[v['name'] for v in chosen]}")
    (served,) = chosen
    provenance = {"repository": REPOSITORY, "version": version}
    if commit:
        provenance["commit"] = commit
    provenance.update(file=file, sha256=hashlib.sha256(crd_bytes).hexdigest(),
                      derived_by="tests/data/ack/derive_schema.py (descriptions dropped, nothing else changed)")
    return {
        "provenance": provenance,
        "group": spec["group"],
        "kind": spec["names"]["kind"],
        "version": served["name"],
        "openAPIV3Schema": strip(served["schema"]["openAPIV3Schema"]),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("crd", type=Path, help="the CRD YAML, e.g. sagemaker.services.k8s.aws_processingjobs.yaml")
    p.add_argument("--version", required=True, help="the controller release the CRD is from, e.g. v1.9.1")
    p.add_argument("--commit", help="the controller repository's commit the CRD is from")
    p.add_argument("--file", help=f"the CRD's path in the repository (default {CRD_DIR}/<name of CRD>)")
    p.add_argument("--api-version", help="the CRD version to take (default: the storage version)")
    args = p.parse_args(argv)
    doc = derive(args.crd.read_bytes(), file=args.file or f"{CRD_DIR}/{args.crd.name}", version=args.version,
                 commit=args.commit, api_version=args.api_version)
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
