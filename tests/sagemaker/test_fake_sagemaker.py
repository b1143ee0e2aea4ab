"""The FakeSageMaker itself, as the node tier uses it: served on an address other than 127.0.0.1, and recording
the access key each request was signed with (how a pod's credentials are seen to arrive)."""

from __future__ import annotations

import boto3
from fake_sagemaker import FakeSageMaker


def test_serves_on_another_address_and_records_the_signing_key() -> None:
    fake = FakeSageMaker()
    endpoint = fake.start(host="127.0.0.2")  # all of 127/8 is loopback: any address but 127.0.0.1 will do
    try:
        assert endpoint.startswith("http://127.0.0.2:")
        sm = boto3.client("sagemaker", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="AKIDPODSECRET0001", aws_secret_access_key="s")
        err = None
        try:
            sm.describe_processing_job(ProcessingJobName="nope")
        except sm.exceptions.ClientError as exc:
            err = exc.response["Error"]
        assert err is not None and err["Code"] == "ValidationException"
        assert err["Message"].startswith("Could not find requested job")
        assert fake.access_keys == ["AKIDPODSECRET0001"]
        assert fake.names() == ["DescribeProcessingJob"]
    finally:
        fake.stop()


def test_in_process_calls_record_no_key() -> None:
    fake = FakeSageMaker()
    fake.handle("DescribeProcessingJob", {"ProcessingJobName": "x"})
    assert fake.access_keys == [] and fake.names() == ["DescribeProcessingJob"]
