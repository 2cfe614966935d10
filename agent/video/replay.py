"""Replayed footage: the recent frames repeat, in order, a sequence seen earlier (a loop or a rewind).

Each analysed frame gets a 256-bit difference hash (dHash: is each of 16x16 area-averaged cells
brighter than its right-hand neighbour) and a 128-bit digest of a noise-bearing sample. Both live in
a ring buffer covering ``replay_window_seconds`` (40 bytes a frame: 600 s at 5 fps is 120 kB). For
every lag in the buffer the check keeps how many consecutive frames matched the frames that lag
earlier (allowing the lag to drift by one frame, as a replay's sampling phase does):

* perceptual: hashes within ``replay_hash_bits`` for ``replay_min_seconds``, and the matched stretch
  shows at least ``MIN_STATES`` clearly different pictures. A still scene matches itself at every lag;
  a repeated *sequence of changes* is what a loop leaves behind. Survives re-encoding.
* exact: the noise-bearing digest equals one at least ``replay_min_lag_seconds`` old for ``EXACT_RUN``
  frames in a row. A live sensor never reproduces its noise; a file replayed bit for bit does, even
  where nothing moves.

What it cannot see: a replay of a still scene that went through an encoder again (no motion to match,
fresh compression noise), and replays played at another speed. Real motion that repeats exactly and
fills the view (a large machine on a fixed cycle) would look like a loop.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from agent.video.settings import AnalyticsConfig

HASH_SIDE = 16  # a HASH_SIDE x HASH_SIDE bit difference hash
MIN_STATES = 4
EXACT_RUN = 3


def dhash(grey: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint64]:
    """256-bit difference hash of a grey image, as four 64-bit words."""
    small = cv2.resize(grey, (HASH_SIDE + 1, HASH_SIDE), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = np.packbits(small[:, 1:] > small[:, :-1])
    return np.frombuffer(bits.tobytes(), dtype=np.uint64).copy()


def hamming(a: npt.NDArray[np.uint64], b: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    """Bits differing between ``b`` and each row of ``a`` (or between two hashes)."""
    return np.asarray(np.bitwise_count(np.bitwise_xor(a, b)).sum(axis=-1), dtype=np.int64)


@dataclass(frozen=True)
class ReplayVerdict:
    replayed: bool
    confidence: float
    details: tuple[tuple[str, Any], ...] = ()


class ReplayCheck:
    """Feed analysed frames in order; :meth:`update` says whether they repeat an earlier sequence."""

    def __init__(self, cfg: AnalyticsConfig) -> None:
        fps = cfg.analysis_fps
        self.capacity = max(8, int(cfg.replay_window_seconds * fps) + 1)
        self.min_run = max(3, round(cfg.replay_min_seconds * fps))
        self.min_lag = max(2, round(cfg.replay_min_lag_seconds * fps))
        self.tolerance = cfg.replay_hash_bits
        self._hashes = np.zeros((self.capacity, HASH_SIDE * HASH_SIDE // 64), np.uint64)
        self._times = np.zeros(self.capacity, np.int64)
        self._digests: dict[bytes, int] = {}  # digest -> frame number, only for frames still in the ring
        self._slot_digest: list[bytes | None] = [None] * self.capacity
        self._run = np.zeros(self.capacity, np.int32)  # index lag-1: frames matched in a row at that lag
        self._n = 0
        self._exact_lag, self._exact_run = 0, 0

    def stored(self) -> int:
        """Frames held (bounded by the window)."""
        return min(self._n, self.capacity)

    def update(self, grey: npt.NDArray[np.uint8], sample: npt.NDArray[np.uint8], t: int, *,
               exact_ok: bool) -> ReplayVerdict:
        """``exact_ok`` False while the frame is a plain repeat (frozen): those repeat by definition."""
        h = dhash(grey)
        m = self.stored()
        run_best, lag_best, states = 0, 0, 0
        if m:
            lags = np.arange(1, m + 1)
            idx = (self._n - lags) % self.capacity
            match = hamming(self._hashes[idx], h) <= self.tolerance
            prev = self._run[:m]
            near = prev.copy()
            near[1:] = np.maximum(near[1:], prev[:-1])
            near[:-1] = np.maximum(near[:-1], prev[1:])
            run = np.where(match, near + 1, 0).astype(np.int32)
            self._run[:m] = run
            if m >= self.min_lag:
                k = int(np.argmax(run[self.min_lag - 1:])) + self.min_lag - 1
                run_best, lag_best = int(run[k]), k + 1
            if run_best >= self.min_run:
                states = self._states(min(run_best, m))
        digest = hashlib.blake2b(sample.tobytes(), digest_size=16).digest()
        seen = self._digests.get(digest)
        lag = self._n - seen if seen is not None else 0
        if exact_ok and seen is not None and lag >= self.min_lag:
            self._exact_run = self._exact_run + 1 if abs(lag - self._exact_lag) <= 1 else 1
            self._exact_lag = lag
        else:
            self._exact_run = 0
        verdict = ReplayVerdict(False, 0.0, (("matched_frames", run_best),))
        if self._exact_run >= EXACT_RUN:
            verdict = ReplayVerdict(True, 0.99, (("cause", "exact"), ("lag_s", self._lag_s(self._exact_lag, t)),
                                                 ("matched_frames", self._exact_run)))
        elif run_best >= self.min_run and states >= MIN_STATES:
            confidence = round(0.5 + 0.5 * min(1.0, run_best / (2 * self.min_run)), 3)
            verdict = ReplayVerdict(True, confidence, (("cause", "perceptual"), ("lag_s", self._lag_s(lag_best, t)),
                                                       ("matched_frames", run_best), ("states", states)))
        self._store(h, digest, t)
        return verdict

    def _states(self, count: int) -> int:
        """Clearly different pictures among the last ``count`` stored frames (greedy, capped at MIN_STATES)."""
        reps: list[npt.NDArray[np.uint64]] = []
        for k in range(count):
            h = self._hashes[(self._n - 1 - k) % self.capacity]
            if all(int(hamming(h, r)) > self.tolerance for r in reps):
                reps.append(h)
                if len(reps) >= MIN_STATES:
                    break
        return len(reps)

    def _lag_s(self, lag: int, t: int) -> float:
        """How far back the repeated frame was, in seconds of the frames' own clock."""
        then = self._times[(self._n - lag) % self.capacity]  # called before the current frame is stored
        return round((t - int(then)) / 1e9, 1)

    def _store(self, h: npt.NDArray[np.uint64], digest: bytes, t: int) -> None:
        slot = self._n % self.capacity
        old = self._slot_digest[slot]
        if old is not None and self._digests.get(old) == self._n - self.capacity:
            del self._digests[old]
        self._hashes[slot], self._times[slot], self._slot_digest[slot] = h, t, digest
        self._digests[digest] = self._n
        self._n += 1
