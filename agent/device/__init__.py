"""Device wing: the agent's composition root (config, runtime, sealer, frame pipeline) and its command line."""

import os

# Before numpy is first imported (agent.device.cli imports it): the device does no BLAS work, so OpenBLAS
# needs no thread pool (agent/core/memory.py). An operator's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
