"""Device wing: provisioning and host setup (keys, certificates, firmware, systemd)."""
