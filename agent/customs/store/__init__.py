"""Customs-side storage: the index (SQLite for one officer, PostgreSQL for a fleet) and evidence blobs."""
