"""Device wing: the pre-inspection equipment self-test."""
