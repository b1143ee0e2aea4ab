"""`dummy-training repack`: the step as a command (inside a processing job, a pod, or on a laptop)."""

from __future__ import annotations

import argparse
import json

from dummy_training import contract


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        contract.REPACK_COMMAND,
        help="repack model.tar.gz so it carries a root hyperparameters.json",
        description=(
            "Keep the archive's own root hyperparameters.json if it has one (output = input, byte for byte); "
            "otherwise inject the given one at the root; fail (exit 1) if there is none. Without arguments the "
            "SageMaker contract paths are searched. Exit codes: 0 ok, 1 not found, 2 invalid input, "
            "3 runtime/I-O error, 4 unexpected."
        ),
    )
    p.add_argument(contract.MODEL.flag, "--pretrained-model-path", dest=contract.MODEL.name, metavar="PATH|S3_URI",
                   help=contract.MODEL.help)
    p.add_argument(contract.HYPERPARAMETERS.flag, dest=contract.HYPERPARAMETERS.name, metavar="PATH|S3_URI",
                   help=contract.HYPERPARAMETERS.help)
    p.add_argument(contract.HYPERPARAMETERS_JSON.flag, dest=contract.HYPERPARAMETERS_JSON.name, metavar="JSON",
                   help=contract.HYPERPARAMETERS_JSON.help)
    out = p.add_mutually_exclusive_group()
    out.add_argument(contract.OUTPUT_DIR.flag, dest=contract.OUTPUT_DIR.name, metavar="DIR",
                     help=contract.OUTPUT_DIR.help + f" (default {contract.CONTAINER_OUTPUT_DIR})")
    out.add_argument(contract.OUTPUT_URI.flag, dest=contract.OUTPUT_URI.name, metavar="S3_URI",
                     help=contract.OUTPUT_URI.help)
    p.add_argument(contract.ENDPOINT_URL.flag, dest=contract.ENDPOINT_URL.name, metavar="URL",
                   help=contract.ENDPOINT_URL.help)
    p.add_argument(contract.RESULT_JSON_FLAG, dest="result_json", metavar="PATH|S3_URI",
                   help="also write a JSON summary of the result to PATH or to an s3:// key (written whole: "
                        "temp file and rename, or one PutObject), only when the repack succeeded")
    p.add_argument(contract.REPORT_FLAG, dest="report", metavar="PATH|S3_URI",
                   help="also write a Markdown report to PATH or to an s3:// key (decision and why, inputs, members, "
                        "bytes, time; what the KFP components show in the KFP UI and the launchers fetch from "
                        "their job); written whole, only when the repack succeeded")
    p.add_argument("--no-progress", action="store_true", help="no progress lines")
    p.add_argument("--fsync", action="store_true", default=None,
                   help="make a local output durable against power loss: fsync the file and its directory "
                        f"(default off, as in cp and gzip; or set {contract.FSYNC_ENV}=1). The output is "
                        "published by an atomic rename either way")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dummy_training.step.repack import run_repack
    from dummy_training.step.resolve import resolve_output

    # the output flags are judged first (e.g. --output-dir s3://... points at --output-uri), before any input
    resolve_output(getattr(args, contract.OUTPUT_DIR.name), getattr(args, contract.OUTPUT_URI.name))
    result = run_repack(
        model=getattr(args, contract.MODEL.name),
        hyperparameters=getattr(args, contract.HYPERPARAMETERS.name),
        hyperparameters_json=getattr(args, contract.HYPERPARAMETERS_JSON.name),
        output_dir=getattr(args, contract.OUTPUT_DIR.name),
        output_uri=getattr(args, contract.OUTPUT_URI.name),
        endpoint_url=getattr(args, contract.ENDPOINT_URL.name),
        progress=not args.no_progress,
        fsync=args.fsync,
    )
    endpoint_url = getattr(args, contract.ENDPOINT_URL.name)
    if args.report or args.result_json:
        from dummy_training.step import report

        result.sha256 = report.local_sha256(result)  # for both: the report and the result JSON carry it
        if args.report:
            report.write_report(args.report, report.render(result), endpoint_url=endpoint_url)
        if args.result_json:
            report.write_file(args.result_json, (json.dumps(result.summary(), indent=2) + "\n").encode(),
                              endpoint_url=endpoint_url, what="result")
    print(result.output)
    return 0
