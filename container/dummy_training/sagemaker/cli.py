"""`dummy-training sagemaker`: run the repack step as a SageMaker Processing job and wait for it.

Flags are the ``sagemaker_launcher.LaunchConfig`` fields (``--role-arn`` is ``role_arn``), so the CLI, the launcher
and the KFP component take the same names. Prints the model's S3 URI on stdout when the job completed.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from dummy_training import contract
from dummy_training.errors import InvalidInputError

if TYPE_CHECKING:
    from dummy_training.sagemaker.launcher import LaunchResult
    from dummy_training.sagemaker.report import JobSummary

COMMAND = "sagemaker"


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def csv_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_launch_arguments(p: argparse.ArgumentParser, *, aws_title: str = "AWS connection") -> None:
    """The input, job and AWS flags of a remote launch (``dummy-training sagemaker`` and ``ack``)."""
    inputs = p.add_argument_group("inputs")
    inputs.add_argument(contract.MODEL.flag, dest="model", required=True, metavar="PATH|S3_URI",
                        help=contract.MODEL.help)
    inputs.add_argument(contract.HYPERPARAMETERS.flag, dest="hyperparameters", metavar="PATH|S3_URI",
                        help=contract.HYPERPARAMETERS.help)
    inputs.add_argument(contract.HYPERPARAMETERS_JSON.flag, dest="hyperparameters_json", metavar="JSON",
                        help=contract.HYPERPARAMETERS_JSON.help)
    inputs.add_argument(flag("s3_prefix"), metavar="S3_URI",
                        help="S3 prefix for staged inputs (<prefix>/<job-name>/input/) and, without "
                             "--s3-output-prefix, the output (<prefix>/<job-name>/output/model.tar.gz)")
    inputs.add_argument(flag("s3_output_prefix"), metavar="S3_URI",
                        help="S3 prefix for the output: <prefix>/<job-name>/output/model.tar.gz")
    inputs.add_argument(flag("s3_direct"), action="store_true",
                        help="no ProcessingInputs/Outputs: the job repacks S3 to S3 with its role (no volume limit "
                             "on the model size; needs network access)")

    job = p.add_argument_group("job")
    job.add_argument(flag("role_arn"), required=True, help="IAM role the job runs with")
    job.add_argument(flag("image_uri"), required=True, help="the dummy-training image in ECR")
    job.add_argument(flag("job_name"), help="explicit job name (default: derived from --job-name-part, else unique)")
    job.add_argument(flag("job_name_part"), dest="job_name_parts", action="append", default=[], metavar="PART",
                     help="derive a deterministic job name from these parts (e.g. KFP run and task ids) so a "
                          "retry re-attaches; repeatable")
    job.add_argument(flag("instance_type"), default=contract.DEFAULT_INSTANCE_TYPE,
                     help=f"default {contract.DEFAULT_INSTANCE_TYPE}")
    job.add_argument(flag("instance_count"), type=int, default=contract.DEFAULT_INSTANCE_COUNT,
                     help=f"default {contract.DEFAULT_INSTANCE_COUNT}")
    job.add_argument(flag("volume_size_gb"), type=int, default=contract.DEFAULT_VOLUME_SIZE_GB,
                     help=f"default {contract.DEFAULT_VOLUME_SIZE_GB}")
    job.add_argument(flag("max_runtime_seconds"), type=int, default=contract.DEFAULT_MAX_RUNTIME_SECONDS,
                     help=f"default {contract.DEFAULT_MAX_RUNTIME_SECONDS}")
    job.add_argument(flag("volume_kms_key_id"), help="KMS key for the instance volume")
    job.add_argument(flag("output_kms_key_id"), help="KMS key for the output upload")
    job.add_argument(flag("subnets"), type=csv_list, default=[], metavar="ID[,ID...]", help="VPC subnet ids")
    job.add_argument(flag("security_group_ids"), type=csv_list, default=[], metavar="ID[,ID...]",
                     help="VPC security group ids")
    job.add_argument(flag("enable_network_isolation"), action="store_true")
    job.add_argument(flag("enable_inter_container_traffic_encryption"), action="store_true")
    job.add_argument(flag("environment"), type=key_value, action="append", default=[], metavar="KEY=VALUE",
                     help="container environment variable; repeatable")
    job.add_argument(flag("tags"), type=key_value, action="append", default=[], metavar="KEY=VALUE",
                     help="job tag; repeatable")

    conn = p.add_argument_group(aws_title)
    conn.add_argument(flag("region"), help="AWS region (default AWS_REGION / AWS_DEFAULT_REGION / profile)")
    conn.add_argument(contract.ENDPOINT_URL.flag, dest="endpoint_url", metavar="URL",
                      help="endpoint URL for the AWS APIs the launcher calls (testing, private endpoints)")
    conn.add_argument(flag("assume_role_arn"), help="assume this role (STS) for the launcher's own calls")


def add_wait_arguments(p: argparse.ArgumentParser, *, on_timeout: str) -> argparse._ArgumentGroup:
    wait = p.add_argument_group("waiting")
    wait.add_argument(flag("timeout_seconds"), type=float,
                      help=f"{on_timeout} when the job has not ended after this long (default max-runtime + 1800)")
    wait.add_argument(flag("poll_interval"), type=float, default=5.0, help="first poll interval, seconds")
    wait.add_argument(flag("max_poll_interval"), type=float, default=30.0, help="poll backoff cap, seconds")
    wait.add_argument(flag("stop_wait_seconds"), type=float, default=300.0,
                      help="after stopping, how long to wait for the job to reach Stopping/Stopped")
    return wait


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    outs = p.add_argument_group("outputs")
    outs.add_argument(flag("model_output_dir"), metavar="DIR",
                      help="download the repacked model.tar.gz into DIR")
    outs.add_argument(flag("model_s3_uri_output"), metavar="PATH", help="write the model's S3 URI to PATH")
    outs.add_argument(flag("job_arn_output"), metavar="PATH", help="write the job ARN to PATH")
    outs.add_argument(flag("job_name_output"), metavar="PATH", help="write the job name to PATH")
    outs.add_argument("--result-json", metavar="PATH", help="write a JSON summary of the result to PATH")
    outs.add_argument("--report", metavar="PATH",
                      help="write a Markdown report of the job to PATH (name, ARN, status, failure reason, "
                           "instances, billable seconds, console and log links, then the job's own repack report "
                           "read back from <prefix>/<job-name>/report/), also when the job failed; written atomically")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        COMMAND,
        help="run the repack as a SageMaker Processing job (stage inputs, create or re-attach, wait, stream logs)",
        description=(
            "Stage the inputs to S3, create the SageMaker Processing job running `dummy-training repack` in the "
            "given image (or re-attach to the job of the same name), stream its CloudWatch logs, and deliver the "
            "repacked model. SIGTERM/SIGINT stop the job. Exit codes: 0 ok, 1 not found, 2 invalid input, "
            "3 runtime/AWS error, 5 job failed, 6 job stopped, 130 interrupted."
        ),
    )
    add_launch_arguments(p)
    wait = add_wait_arguments(p, on_timeout="stop the job")
    wait.add_argument("--no-logs", dest="stream_logs", action="store_false",
                      help="do not stream the job's CloudWatch logs")
    add_output_arguments(p)
    p.add_argument("--dry-run", action="store_true",
                   help="print the CreateProcessingJob request as JSON (local inputs at the S3 URIs they would be "
                        "staged to; the job named as its first attempt) and exit: no AWS call, no credentials "
                        "needed. Feeds `aws sagemaker create-processing-job --cli-input-json file://...`")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):  # noqa: ANN201 - LaunchConfig, imported lazily
    from dummy_training.sagemaker.launcher import LaunchConfig

    if not (args.s3_prefix or args.s3_output_prefix):
        raise InvalidInputError("pass --s3-prefix (staging and output) or --s3-output-prefix")
    return LaunchConfig(
        model=args.model,
        role_arn=args.role_arn,
        image_uri=args.image_uri,
        s3_prefix=args.s3_prefix,
        s3_output_prefix=args.s3_output_prefix,
        hyperparameters=args.hyperparameters,
        hyperparameters_json=args.hyperparameters_json,
        region=args.region,
        endpoint_url=args.endpoint_url,
        assume_role_arn=args.assume_role_arn,
        job_name=args.job_name,
        job_name_parts=tuple(args.job_name_parts),
        instance_type=args.instance_type,
        instance_count=args.instance_count,
        volume_size_gb=args.volume_size_gb,
        max_runtime_seconds=args.max_runtime_seconds,
        volume_kms_key_id=args.volume_kms_key_id,
        output_kms_key_id=args.output_kms_key_id,
        subnets=args.subnets,
        security_group_ids=args.security_group_ids,
        enable_network_isolation=args.enable_network_isolation,
        enable_inter_container_traffic_encryption=args.enable_inter_container_traffic_encryption,
        environment=dict(args.environment),
        tags=dict(args.tags),
        s3_direct=args.s3_direct,
        model_output_dir=args.model_output_dir,
        timeout_seconds=args.timeout_seconds,
        poll_interval=args.poll_interval,
        max_poll_interval=args.max_poll_interval,
        stop_wait_seconds=args.stop_wait_seconds,
        stream_logs=args.stream_logs,
    )


def write_output(path: str | None, text: str) -> None:
    """Write an output file (``--model-s3-uri-output``, ``--result-json`` ...) whole, as the report is written."""
    if not path:
        return
    from dummy_training.step.report import write_file

    write_file(path, text.encode("utf-8"), what="output")


def run(args: argparse.Namespace) -> int:
    from dummy_training.sagemaker.launcher import BACKEND, launch
    from dummy_training.sagemaker.report import JobSummary

    config = config_from_args(args)
    if args.dry_run:
        from dummy_training.sagemaker.launcher import dry_run

        print(json.dumps(dry_run(config), indent=2))
        return 0
    job = JobSummary(backend=BACKEND)
    return report_launch(args, with_report(args, job, lambda: launch(config, job=job)))


def with_report(args: argparse.Namespace, job: JobSummary, run: Callable[[], LaunchResult]) -> LaunchResult:
    """Run a launch that fills ``job``; with ``--report``, write the report whether the launch succeeded or failed
    (then the error is re-raised: the CLI's one line and exit code)."""
    if not args.report:
        return run()
    from dummy_training.sagemaker.report import render, reporting
    from dummy_training.step.report import write_report

    return reporting(job, run, lambda j: write_report(args.report, render(j)))


def report_launch(args: argparse.Namespace, result) -> int:  # noqa: ANN001 - sagemaker_launcher.LaunchResult
    """Write a launch's outputs where the output flags say, print the model's S3 URI (sagemaker and ack)."""
    write_output(args.model_s3_uri_output, result.model_s3_uri)
    write_output(args.job_arn_output, result.job_arn)
    write_output(args.job_name_output, result.job_name)
    if args.result_json:
        from dummy_training import __version__
        from dummy_training.ends.local_file import sha256_file

        repack = result.job.repack_result if result.job else None  # the job's own result.json
        # the output's sha256: of the downloaded model, else as the job's repack computed it (staged jobs)
        digest = (sha256_file(result.local_model_path) if result.local_model_path
                  else (repack or {}).get("sha256"))
        summary = {**result.metadata(), "status": result.status, "reused": result.reused,
                   "local_model_path": result.local_model_path, "sha256": digest,
                   "member_count": (repack or {}).get("member_count"), "dummy_training_version": __version__,
                   "repack": repack}
        write_output(args.result_json, json.dumps(summary, indent=2) + "\n")
    print(result.model_s3_uri)
    return 0
