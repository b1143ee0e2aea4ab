"""pipelines_step without the SageMaker Python SDK (the default suite has none; the SDK's own tests are in
``test_sagemaker_pipelines_step.py``, marker ``sagemaker_sdk``): the error names what to install, and the docs
show the example file that those tests run."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from dummy_training.errors import EXIT_RUNTIME, RuntimeIOError
from dummy_training.sagemaker import pipelines_step
from dummy_training.sagemaker.pipelines_step import processing_step

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "examples" / "sagemaker_pipeline.py"
ROLE = "arn:aws:iam::123456789012:role/dummy-training"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/dummy-training:1"


def test_without_an_sdk_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # as if no sagemaker distribution were installed: every sagemaker module blocked
    for name in [n for n in sys.modules if n == "sagemaker" or n.startswith("sagemaker.")] + ["sagemaker"]:
        monkeypatch.setitem(sys.modules, name, None)
    assert pipelines_step.installed_sdk_major() is None
    with pytest.raises(RuntimeIOError) as info:
        processing_step("Repack", role_arn=ROLE, image_uri=IMAGE, model_s3_uri="s3://b/m", output_s3_uri="s3://b/o")
    message = str(info.value)
    assert "\n" not in message
    assert "pip install 'kfp-sagemaker-dummy-training[sagemaker]'" in message and "'sagemaker>=3'" in message
    assert info.value.exit_code == EXIT_RUNTIME



def test_the_docs_show_the_example_file() -> None:
    page = (REPO / "docs" / "sagemaker.md").read_text(encoding="utf-8")
    section = page.split("## SageMaker Pipelines", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.S)
    example = EXAMPLE.read_text(encoding="utf-8")
    assert block.strip() in example, "docs/sagemaker.md's SageMaker Pipelines example differs from docs/examples"
