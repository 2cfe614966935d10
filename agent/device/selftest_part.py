"""What the in-service self-test reads from a running agent: its live frame hub, sensors, broker link and vault.

The self-test gets these probes, never the agent itself, so it runs the same checks as the technician's
``evidence-agent selftest`` against the parts the service is using right now.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.device.runtime import Agent
    from agent.selftest.in_service import ServiceProbes


def service_probes(agent: Agent) -> ServiceProbes:
    """What the in-service self-test reads: the live hub, sensors, link and vault, never this object."""
    from agent.gps.provider import DisabledGps
    from agent.selftest.command import frames_from_hub, tls_note
    from agent.selftest.in_service import BrokerProbe, ServiceProbes

    broker = None
    ucfg = agent.cfg.uplink
    if agent.uplink is not None and ucfg is not None:
        link = agent.uplink.link

        def connected(timeout: float) -> str | None:
            return None if link.wait_connected(timeout) else (link.last_error or "not connected")

        broker = BrokerProbe(connected, ucfg.mqtt.broker, ucfg.mqtt.url.tls,
                             tls_note(ucfg, agent.cfg.identity.key_dir))
    camera = agent.hub.camera
    return ServiceProbes(
        camera=camera.describe(), simulated_camera="simulated" in camera.capabilities,
        frames=lambda: frames_from_hub(agent.hub), gps=agent.sensors.gps or DisabledGps(),
        time_quality=agent.sensors.time_quality.read, broker=broker, vault_path=agent.vault.path,
        quota_bytes=agent.vault.quota_bytes or agent.cfg.vault.quota_mb * 1024 * 1024,
        used_bytes=agent.vault.usage_bytes, identity=lambda: agent.identity, clock=agent.clock,
        seal=lambda extra: agent.store.seal("selftest", agent.sensors.moment(), extra=extra))
