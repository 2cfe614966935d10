"""Customs-side tools: `evidence-officer` (ingest, live, cmd, keys)."""
