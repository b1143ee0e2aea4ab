"""The ACK backend (SageMaker Operators for Kubernetes): the ``ProcessingJob`` manifest converted from the
SageMaker request (``manifest``), the launcher that creates the resource, waits on its status and deletes it on
SIGTERM (``launcher``), and ``dummy-training ack`` (``cli``)."""
