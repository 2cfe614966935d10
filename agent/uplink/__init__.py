"""Device wing: durable outbox, uplink service, command controller and live view on the device."""
