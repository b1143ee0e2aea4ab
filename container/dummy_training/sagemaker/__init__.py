"""The SageMaker backend: the ``CreateProcessingJob`` request built from the contract (``processing_job``), input
staging (``staging``), the launcher that creates, re-attaches, streams logs, stops and delivers (``launcher``),
the SageMaker Pipelines step (``pipelines_step``) and ``dummy-training sagemaker`` (``cli``)."""
