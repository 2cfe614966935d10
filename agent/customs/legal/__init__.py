"""The inspection report as a legal document: the officer's PAdES signature on the report PDF."""
