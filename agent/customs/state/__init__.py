"""Where a ``--share`` group of ingest workers keeps its bookkeeping: a SQLite file or the PostgreSQL index."""
