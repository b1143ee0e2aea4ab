"""Where the bytes live: the ``ByteSource``/``Sink`` protocols (``base``), local files (``local_file``), S3
objects (``s3_object``), the seekable adapter over a source (``seekable``), and ``factory``, which opens the
right one for a path or an ``s3://`` URI. Nothing here knows about tar or gzip."""
