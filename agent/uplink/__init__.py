"""MQTT uplink: durable outbox, broker link, officer commands and live view."""
