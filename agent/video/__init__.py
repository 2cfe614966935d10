"""Continuous video: recorder, analytics, overlay, sealing and the segment verifier (issue 3)."""
