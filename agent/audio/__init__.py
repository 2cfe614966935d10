"""Site audio for two-way voice: microphone sources and speaker sinks (one backend per module), Opus and Ogg."""
