"""Reading a C2SP tlog-tiles log (Rekor v2 / Tessera): node hashes and RFC 9162 consistency proofs from tiles.

A tile ``tile/<L>/<N>`` holds up to 256 hashes of the nodes at tree level 8·L, numbered N·256 onwards; the
last tile of a level is partial (``tile/<L>/<N>.p/<W>``, W hashes) until it fills. N is written in
three-digit groups, all but the last prefixed by ``x`` (1234067 -> ``x001/x234/067``). Every other node is
hashed from the tile row below it. ``get`` fetches one path and raises KeyError when it does not exist.
"""

from __future__ import annotations

from collections.abc import Callable

from agent.anchor.merkle import HASH_LEN, node_hash
from agent.core.errors import VerificationError

TILE_WIDTH = 256
TILE_HEIGHT = 8


def tile_index_path(n: int) -> str:
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        groups.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(groups))


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    base = f"tile/{level}/{tile_index_path(index)}"
    return base if width == TILE_WIDTH else f"{base}.p/{width}"


def _split(n: int) -> int:
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


class TileReader:
    """Node hashes of the tree of ``size`` leaves, read from tiles through ``get``; caches the tiles it read."""

    def __init__(self, get: Callable[[str], bytes], size: int) -> None:
        self.get = get
        self.size = size
        self._tiles: dict[tuple[int, int], bytes] = {}

    def _tile(self, level: int, index: int) -> bytes:
        key = (level, index)
        if key not in self._tiles:
            count = self.size >> (TILE_HEIGHT * level)  # nodes at this tile level in the tree
            width = min(TILE_WIDTH, count - index * TILE_WIDTH)
            if width <= 0:
                raise VerificationError(f"tiles: tile {level}/{index} is beyond tree size {self.size}")
            try:
                data = self.get(tile_path(level, index, width))
            except KeyError:  # the partial tile may be gone once the tile grew: its prefix is the same
                data = self.get(tile_path(level, index))
            if len(data) < width * HASH_LEN:
                raise VerificationError(f"tiles: tile {level}/{index} holds {len(data) // HASH_LEN} hashes, "
                                        f"needs {width}")
            self._tiles[key] = data[: width * HASH_LEN]
        return self._tiles[key]

    def node(self, level: int, index: int) -> bytes:
        """Hash of the perfect subtree of height ``level`` at position ``index``."""
        if level % TILE_HEIGHT == 0:
            t = self._tile(level // TILE_HEIGHT, index // TILE_WIDTH)
            i = index % TILE_WIDTH
            return t[i * HASH_LEN : (i + 1) * HASH_LEN]
        return node_hash(self.node(level - 1, 2 * index), self.node(level - 1, 2 * index + 1))

    def mth(self, start: int, end: int) -> bytes:
        n = end - start
        if n & (n - 1) == 0 and start % n == 0:
            return self.node(n.bit_length() - 1, start // n)
        k = _split(n)
        return node_hash(self.mth(start, start + k), self.mth(start + k, end))

    def consistency_proof(self, size1: int) -> list[bytes]:
        """RFC 9162 PROOF(size1, D[0:size])."""
        if not 0 <= size1 <= self.size:
            raise VerificationError(f"tiles: consistency {size1} -> {self.size} impossible")
        if size1 in (0, self.size):
            return []
        out: list[bytes] = []
        start, end, m, whole = 0, self.size, size1, True
        while True:
            n = end - start
            if m == n:
                if not whole:
                    out.append(self.mth(start, end))
                break
            k = _split(n)
            if m <= k:
                out.append(self.mth(start + k, end))
                end = start + k
            else:
                out.append(self.mth(start, start + k))
                start, m, whole = start + k, m - k, False
        out.reverse()
        return out
