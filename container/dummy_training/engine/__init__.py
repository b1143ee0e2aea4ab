"""The engine: scan, validate, decide, splice or re-encode. It sees a ``ByteSource`` and a ``Sink`` and never
knows which ends it has. Start at ``archive.repack_archive``; ``gzip_scan`` and ``tar_scan`` read and validate
the stream, ``splice`` appends to the existing deflate stream, ``reencode`` handles a plain tar,
``parallel_deflate`` and ``scan_child`` are the multi-core helpers, ``deflate_blocks`` the block-level inflater."""
