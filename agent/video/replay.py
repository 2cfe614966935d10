"""Replayed footage: the recent frames repeat, in order, a sequence seen earlier (a loop or a rewind).

Each analysed frame gets a 256-bit difference hash (dHash: is each of 16x16 area-averaged cells
brighter than its right-hand neighbour; only firm bits are compared) and a 128-bit digest of a
noise-bearing sample. Both live in a ring buffer covering ``replay_window_seconds``. For
every lag in the buffer the check keeps how many consecutive frames matched the frames that lag
earlier (allowing the lag to drift by one frame, as a replay sampled at another phase does):

* perceptual: hashes within ``replay_hash_bits`` for ``replay_min_seconds``, and the matched stretch
  shows at least ``MIN_STATES`` clearly different pictures. A still scene matches itself at every lag;
  a repeated *sequence of changes* is what a loop leaves behind. Survives re-encoding. A candidate is
  then confirmed on 48x27 grey thumbnails kept for the window (1.3 kB a frame): where the pictures
  move, a replay differs from the originals by compression only (measured: median 0.05-0.5 grey
  levels), someone else walking the same path by their
  whole figure (62-82 levels, one-by-one-person-detection); the bound is ``MAX_RESIDUAL``.
* exact: the noise-bearing digest equals one at least ``replay_min_lag_seconds`` old for ``EXACT_RUN``
  frames in a row. A live sensor never reproduces its noise; a file replayed bit for bit does, even
  where nothing moves.

What it cannot see: a replay of a still scene that went through an encoder again (no motion to match,
fresh compression noise), and replays played at another speed. Real motion that repeats exactly and
fills the view (a large machine on a fixed cycle) would look like a loop.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.video.imgops import resize_area
from agent.video.settings import AnalyticsConfig

HASH_SIDE = 16  # a HASH_SIDE x HASH_SIDE bit difference hash
FIRM_LEVELS = 0.7
MIN_STATES = 4
EXACT_RUN = 3
MAX_LAGS = 8  # candidate lags confirmed per frame, at most
MIN_MOVING = 0.05  # share of thumbnail pixels that must move for a replay to be told apart
THUMB = (48, 27)  # grey thumbnail kept per frame to confirm a candidate replay
MOVING_STD = 4.0  # thumbnail pixels varying more than this over the candidate stretch are where it moves
MAX_RESIDUAL = 0.25  # of the motion's own spread: a replay differs from its original by compression only
MAX_ABS_RESIDUAL = 6.0  # grey levels, the same bound in absolute terms


def dhash(grey: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint64]:
    """Difference hash of a grey image: HASH_SIDE x HASH_SIDE bits, then as many bits saying which of them are
    firm (neighbours differ by at least FIRM_LEVELS grey levels; in flat areas compression noise flips bits)."""
    small = resize_area(grey.astype(np.float32), (HASH_SIDE + 1, HASH_SIDE))
    diff = small[:, 1:] - small[:, :-1]
    bits = np.packbits(diff > 0).tobytes() + np.packbits(np.abs(diff) >= FIRM_LEVELS).tobytes()
    return np.frombuffer(bits, dtype=np.uint64).copy()


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def hamming(a: npt.NDArray[np.uint64], b: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    """Firm bits differing between ``b`` and each row of ``a`` (or between two hashes)."""
    w = a.shape[-1] // 2
    firm = np.bitwise_and(a[..., w:], b[..., w:])
    differ = np.bitwise_and(np.bitwise_xor(a[..., :w], b[..., :w]), firm)
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.asarray(np.bitwise_count(differ).sum(axis=-1), dtype=np.int64)
    octets = np.ascontiguousarray(differ).view(np.uint8)  # numpy 1.x (Debian bookworm's, for picamera2)
    return np.asarray(_POPCOUNT[octets].sum(axis=-1), dtype=np.int64)


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
        self._hashes = np.zeros((self.capacity, 2 * HASH_SIDE * HASH_SIDE // 64), np.uint64)
        self._times = np.zeros(self.capacity, np.int64)
        self._digests: dict[bytes, int] = {}  # digest -> frame number, only for frames still in the ring
        self._slot_digest: list[bytes | None] = [None] * self.capacity
        self._run = np.zeros(self.capacity, np.int32)  # index lag-1: frames matched in a row at that lag
        self._thumbs = np.zeros((self.capacity, THUMB[1], THUMB[0]), np.uint8)
        self._n = 0
        self._exact_lag, self._exact_run = 0, 0
        self.last_residual = -1.0

    def stored(self) -> int:
        """Frames held (bounded by the window)."""
        return min(self._n, self.capacity)

    def update(self, grey: npt.NDArray[np.uint8], sample: npt.NDArray[np.uint8], t: int, *,
               exact_ok: bool) -> ReplayVerdict:
        """``exact_ok`` False while the frame is a plain repeat (frozen): those repeat by definition."""
        h = dhash(grey)
        thumb = np.asarray(resize_area(grey, THUMB), dtype=np.uint8)
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
                tail = run[self.min_lag - 1:]
                candidates = np.flatnonzero(tail >= self.min_run)
                if candidates.size:
                    run_best = int(tail[candidates].max())
                    states = self._states(min(run_best, m, 2 * self.min_run))
                if candidates.size and states >= MIN_STATES:
                    # a still view matches itself at every lag: confirm on thumbnails, best-matched lags first
                    best = candidates[np.argsort(-tail[candidates])[:MAX_LAGS]] + self.min_lag
                    scored = [(self._residual(int(lag), self.min_run, thumb), int(lag)) for lag in best]
                    (self.last_residual, absolute), lag_best = min(scored)
                    run_best = int(run[lag_best - 1])
                    if self.last_residual > MAX_RESIDUAL or absolute > MAX_ABS_RESIDUAL:
                        states = 0  # the same place, not the same pictures: someone else on the same path
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
                                                       ("matched_frames", run_best), ("states", states),
                                                       ("residual", round(self.last_residual, 2))))
        self._store(h, digest, t, thumb)
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

    def _residual(self, lag: int, count: int, thumb: npt.NDArray[np.uint8]) -> tuple[float, float]:
        """Grey difference (80th percentile over the frames), where the pictures move, between the last
        ``count`` frames (the current one included) and the frames ``lag`` earlier (best of lag-1..lag+1 per
        frame): as a share of how much the pictures vary there (a dim or low-contrast scene is judged like a
        bright one), and in grey levels."""
        now = np.stack([thumb] + [self._thumbs[(self._n - k) % self.capacity] for k in range(1, count)])
        now = now.astype(np.int16)
        moving = now.std(axis=0) > MOVING_STD
        if moving.mean() < MIN_MOVING:
            return math.inf, math.inf  # nothing moves: nothing to tell a replay by
        spread = float(now.std(axis=0)[moving].mean())  # how much the picture moves there
        errs = []
        for k in range(count):
            diffs = [float(np.abs(now[k] - self._thumbs[(self._n - k - lg) % self.capacity].astype(np.int16))[
                moving].mean()) for lg in (lag - 1, lag, lag + 1) if 0 < lg <= self.stored() - k]
            errs.append(min(diffs, default=math.inf))
        if not all(math.isfinite(e) for e in errs):
            return math.inf, math.inf  # part of the stretch has left the window
        worst = float(np.percentile(errs, 80))  # judged where they differ most, not on the still frames between
        return worst / max(spread, 1.0), worst

    def _store(self, h: npt.NDArray[np.uint64], digest: bytes, t: int, thumb: npt.NDArray[np.uint8]) -> None:
        slot = self._n % self.capacity
        old = self._slot_digest[slot]
        if old is not None and self._digests.get(old) == self._n - self.capacity:
            del self._digests[old]
        self._hashes[slot], self._times[slot], self._slot_digest[slot] = h, t, digest
        self._thumbs[slot] = thumb
        self._digests[digest] = self._n
        self._n += 1
