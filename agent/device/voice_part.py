"""Two-way voice as a part of the running agent: built from ``[audio]``, its commands added to the controller,
its worker supervised (a death ends the sessions, sealed, and is restarted), closed with the capture."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.core.supervisor import Restart

if TYPE_CHECKING:
    from agent.device.runtime import Agent
    from agent.uplink.voice import VoiceManager


def attach_voice(agent: Agent) -> VoiceManager | None:
    """The voice manager of ``agent`` when ``[audio] enabled`` and officer commands run, else None."""
    cfg = agent.cfg.audio
    if not cfg.enabled or agent.commands is None or agent.uplink is None:
        return None
    from agent.uplink.voice import WORKER, VoiceManager

    commands, topics = agent.commands, agent.uplink.topics
    voice = VoiceManager(cfg, commands._publish_live, agent.identity, device_id=topics.device, site_id=topics.site,
                         topic_for=topics.live, clock=agent.clock, moment=agent.sensors.moment, seal=agent.store.seal)
    commands.controller.handlers.update(voice.handlers())
    agent.supervisor.restartable(WORKER, Restart(voice.restart))
    agent.parts.check("voice", voice.health)
    agent.on_close.append(voice.close)  # before the commands close: sessions end sealed
    return voice
