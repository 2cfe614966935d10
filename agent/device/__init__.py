"""Device wing: the agent's composition root (config, runtime, sealer, frame pipeline) and its command line."""
