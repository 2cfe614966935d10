"""Two-way voice as a part of the running agent: built from ``[audio]``, its commands added to the controller,
its worker supervised (a death ends the sessions, sealed, and is restarted), closed with the capture."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import ec

from agent.core.supervisor import Restart

if TYPE_CHECKING:
    from agent.device.runtime import Agent
    from agent.uplink.voice import VoiceManager


def attach_voice(agent: Agent) -> VoiceManager | None:
    """The voice manager of ``agent`` when ``[audio] enabled`` and officer commands run, else None."""
    cfg = agent.cfg.audio
    if not cfg.enabled or agent.commands is None or agent.uplink is None:
        return None
    from agent.uplink.voice import SPEAKER, WORKER, VoiceManager

    commands, topics, link = agent.commands, agent.uplink.topics, agent.uplink.link

    def officer_key(key_id: str) -> ec.EllipticCurvePublicKey | None:
        officer = commands.trust.lookup(key_id)  # re-read on change: a revoked officer is no longer heard
        return None if officer is None else officer.public_key

    voice = VoiceManager(cfg, commands._publish_live, agent.identity, device_id=topics.device, site_id=topics.site,
                         topic_for=topics.live, clock=agent.clock, moment=agent.sensors.moment, seal=agent.store.seal,
                         talk_for=topics.talk, subscribe=link.subscribe, unsubscribe=link.unsubscribe,
                         officer_key=officer_key)
    commands.controller.handlers.update(voice.handlers())
    agent.supervisor.restartable(WORKER, Restart(voice.restart))
    agent.supervisor.restartable(SPEAKER, Restart(voice.restart))
    agent.parts.check("voice", voice.health)
    agent.on_close.append(voice.close)  # before the commands close: sessions end sealed
    return voice
