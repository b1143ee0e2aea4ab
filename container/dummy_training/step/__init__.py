"""The step: resolve the inputs (contract paths, flags, S3 URIs) in ``resolve``, run the engine between two ends,
log and summarise in ``repack``; ``cli`` is ``dummy-training repack``."""
