"""`dummy-training ack manifest|run`: the step as an ACK ``ProcessingJob`` custom resource.

``manifest`` prints the resource as YAML (``kubectl apply -f -``); ``run`` stages local inputs to S3, creates
the resource through the Kubernetes API (or re-attaches to one of the same name), waits for the ACK SageMaker
controller to report the outcome, and prints the model's S3 URI. The job flags are the SageMaker launcher's
(``dummy-training sagemaker``; same names, same parsing, same ``LaunchConfig``); ``--namespace``,
``--kubeconfig`` and ``--context`` choose the cluster.
"""

from __future__ import annotations

import argparse
import logging

from dummy_training import contract
from dummy_training.errors import InvalidInputError
from dummy_training.sagemaker.cli import (
    add_launch_arguments,
    add_output_arguments,
    add_wait_arguments,
    config_from_args,
    key_value,
    report_launch,
    with_report,
)

log = logging.getLogger(__name__)

COMMAND = "ack"


def add_job_arguments(p: argparse.ArgumentParser) -> None:
    """The SageMaker launcher's input and job flags (the AWS ones only serve staging and download here)."""
    add_launch_arguments(p, aws_title="AWS connection (staging and download; the job's region is the controller's)")
    kube = p.add_argument_group("Kubernetes")
    kube.add_argument("--namespace", help="namespace (default: the pod's, else the kubeconfig context's)")
    kube.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster config, else $KUBECONFIG)")
    kube.add_argument("--context", help="kubeconfig context")
    kube.add_argument("--label", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                      help="resource label; repeatable")
    kube.add_argument("--annotation", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                      help="resource annotation; repeatable")
    # What `sagemaker` has and ACK has not: the controller owns the job, the launcher streams no CloudWatch logs.
    p.set_defaults(stream_logs=False)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    ack = subparsers.add_parser(
        COMMAND, help="run the repack as an ACK ProcessingJob (SageMaker through the Kubernetes API)",
        description="The same processing job as `dummy-training sagemaker`, as a "
        f"{contract.ACK_API_VERSION} {contract.ACK_KIND} handled by the ACK SageMaker controller.")
    sub = ack.add_subparsers(dest="ack_command", metavar="ACTION", required=True)

    m = sub.add_parser("manifest", help="print the ProcessingJob manifest (YAML for kubectl apply -f -)",
                       description="Print the manifest. Inputs must be S3 URIs the job can read as they are "
                                   "(model.tar.gz / hyperparameters.json or their prefix) unless --stage uploads "
                                   "or copies them (needs S3 access).")
    add_job_arguments(m)
    m.add_argument("--stage", action="store_true",
                   help="stage local inputs / inline JSON / other key names to S3 first, as `ack run` does")
    m.set_defaults(func=run_manifest, needs=("yaml",), model_output_dir=None, timeout_seconds=None, poll_interval=5.0,
                   max_poll_interval=30.0, stop_wait_seconds=300.0)

    r = sub.add_parser(
        "run", help="stage inputs, create (or re-attach to) the ProcessingJob, wait for the job",
        description="Exit codes: 0 completed, 1 input not found, 2 invalid input, 3 runtime error (Kubernetes "
                    "or AWS access), 5 job failed or rejected, 6 job stopped or timed out, 130 interrupted "
                    "(SIGTERM/SIGINT delete the resource, which makes the controller stop the job).")
    add_job_arguments(r)
    add_wait_arguments(r, on_timeout="delete the resource")
    add_output_arguments(r)
    r.set_defaults(func=run, needs=("kubernetes", "yaml"))


def _options(args: argparse.Namespace):  # noqa: ANN202 - ack_launcher.AckOptions, imported lazily
    from dummy_training.ack.launcher import AckOptions

    return AckOptions(namespace=args.namespace, kubeconfig=args.kubeconfig, context=args.context,
                      labels=dict(args.label), annotations=dict(args.annotation))


def _manifest_inputs(config) -> tuple[str, str | None]:  # noqa: ANN001 - LaunchConfig
    """Inputs of a manifest written without staging: S3 URIs a job can read as they are."""
    if config.hyperparameters_json:
        raise InvalidInputError(f"{contract.HYPERPARAMETERS_JSON.flag} must be staged to S3: add --stage "
                                "(or upload it and pass --hyperparameters s3://...)")
    for what, uri, filename in (("model", config.model, contract.MODEL_FILENAME),
                                ("hyperparameters", config.hyperparameters, contract.HYPERPARAMETERS_FILENAME)):
        if not uri:
            continue
        if not uri.startswith("s3://"):
            raise InvalidInputError(f"{what} {uri!r} is not an s3:// URI: add --stage to upload it")
        if not config.s3_direct and not (uri.endswith("/") or uri.rsplit("/", 1)[-1] == filename):
            raise InvalidInputError(f"{what} {uri!r}: the job looks for {filename} in its input directory; "
                                    "pass an object of that name or its prefix, or add --stage (copies it) "
                                    "or --s3-direct")
    return config.model, config.hyperparameters or None


def run_manifest(args: argparse.Namespace) -> int:
    from dummy_training import aws
    from dummy_training.ack import launcher as ack_launcher
    from dummy_training.ack import manifest as ack_manifest
    from dummy_training.sagemaker import launcher as sagemaker_launcher
    from dummy_training.sagemaker import staging

    config = config_from_args(args)
    options = _options(args)
    config.staging_base()
    sagemaker_launcher.build_spec(config, "validation-only").validate()
    if config.job_name:
        name = config.job_name
    elif config.job_name_parts:
        name = sagemaker_launcher.default_job_name(*config.job_name_parts)
    else:
        name = sagemaker_launcher.unique_job_name()
    if args.stage:
        sess = aws.session(config.region, config.assume_role_arn)
        s3 = aws.client("s3", region=config.region, endpoint_url=config.endpoint_url, boto_session=sess)
        manifest = ack_launcher.make_manifest(config, name, s3, options, options.namespace)
    else:
        model, hyperparameters = _manifest_inputs(config)
        staged = staging.StagedInputs(model_s3_uri=model, hyperparameters_s3_uri=hyperparameters)
        spec = sagemaker_launcher.build_spec(config, name, staged)
        manifest = ack_manifest.build_manifest(spec, namespace=options.namespace, labels=options.labels,
                                          annotations=options.annotations)
    print(ack_manifest.manifest_yaml(manifest), end="")
    return 0


def run(args: argparse.Namespace) -> int:
    from dummy_training.ack.launcher import BACKEND, launch
    from dummy_training.sagemaker.report import JobSummary

    config, options = config_from_args(args), _options(args)
    job = JobSummary(backend=BACKEND)
    return report_launch(args, with_report(args, job, lambda: launch(config, options, job=job)))
