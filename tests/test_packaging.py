"""The distribution as pip builds it: the license (Apache-2.0, as the image's label says) travels with it."""

from __future__ import annotations

import email
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_license_file_is_the_apache_2_0_text() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n                           Version 2.0, January 2004")
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text and text.count("\n") >= 200
    dockerfile = (ROOT / "container" / "Dockerfile").read_text()
    assert 'org.opencontainers.image.licenses="Apache-2.0"' in dockerfile  # the image says the same


def test_sdist_carries_license_metadata_and_file(tmp_path: Path) -> None:
    # setuptools' own PEP 517 hook with the installed setuptools: nothing is downloaded
    code = f"from setuptools import build_meta; print(build_meta.build_sdist({str(tmp_path)!r}))"
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr
    sdist = tmp_path / res.stdout.strip().splitlines()[-1]
    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        meta = email.message_from_bytes(tar.extractfile(f"{top}/PKG-INFO").read())
        assert tar.extractfile(f"{top}/LICENSE").read() == (ROOT / "LICENSE").read_bytes()
    assert meta["License"] == "Apache-2.0"
    assert "License :: OSI Approved :: Apache Software License" in meta.get_all("Classifier")
    assert meta.get_all("License-File") == ["LICENSE"]
