"""``[audio]``: two-way voice between an officer's browser and the site (microphone, speaker, Opus, sealing)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class AudioConfig(BaseModel):
    """The site's microphone and speaker, and how voice sessions are encoded, limited and sealed."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Offer voice sessions to officers (voice.start); needs the uplink.")
    source: Literal["file", "sounddevice"] = Field(
        "sounddevice", description="Site microphone: sounddevice (PortAudio, e.g. a USB speakerphone; pip extra "
                                   "'audio') or file (a WAV/Ogg/Opus file played in real time: tests, demos).")
    source_file: Path | None = Field(None, description="The file the 'file' source reads (any rate/channels; "
                                                       "resampled to 48 kHz mono).")
    source_loop: bool = Field(True, description="The 'file' source starts over at the end (else: silence).")
    sink: Literal["none", "file", "sounddevice"] = Field(
        "sounddevice", description="Site speaker for the officer's voice: sounddevice, file (writes a WAV of what "
                                   "would be played) or none.")
    sink_file: Path | None = Field(None, description="The WAV the 'file' sink writes (replaced at each start).")
    input_device: str | None = Field(None, max_length=200,
                                     description="PortAudio input device name or index (None: the default).")
    output_device: str | None = Field(None, max_length=200,
                                      description="PortAudio output device name or index (None: the default).")
    bitrate_kbps: int = Field(20, ge=6, le=64, description="Opus bitrate of the site's voice (wideband speech "
                                                          "is clear from 16).")
    frame_ms: Literal[10, 20, 40, 60] = Field(20, description="Opus frame duration.")
    packets_per_message: int = Field(8, ge=1, le=25, description="Opus packets signed and sent together (8 x 20 "
                                                                 "ms: one signed message per 160 ms; fewer cut "
                                                                 "latency, more cut the signature overhead).")
    segment_seconds: float = Field(30.0, ge=2, le=600, description="Seconds of conversation per sealed audio item "
                                                                   "(one Ogg/Opus file per direction).")
    default_seconds: float = Field(600.0, gt=0, le=7200, description="Session length when the officer names none.")
    max_seconds: float = Field(3600.0, gt=0, le=14_400, description="Longest voice session an officer may ask for.")
    keepalive_timeout_s: float = Field(10.0, ge=2, le=120, description="A session without a keepalive this long "
                                                                       "ends (the officer's page is gone).")
    max_sessions: int = Field(1, ge=1, le=4, description="Voice sessions at once.")

    @model_validator(mode="after")
    def _files_named(self) -> AudioConfig:
        if self.enabled and self.source == "file" and self.source_file is None:
            raise ValueError("source = \"file\" needs source_file")
        if self.enabled and self.sink == "file" and self.sink_file is None:
            raise ValueError("sink = \"file\" needs sink_file")
        return self
