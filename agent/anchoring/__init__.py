"""Device wing: background anchoring of the device log (anchorer thread and its wiring)."""
