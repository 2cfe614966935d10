"""Customs wing: ingest, storage, officer services, console and the evidence-officer CLI."""
