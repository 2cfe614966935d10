"""TileReader (C2SP tlog-tiles) gives the same consistency proofs as the device's own Merkle store."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from agent.anchor.merkle import LeafStore, leaf_hash, verify_consistency
from agent.anchor.tiles import TILE_WIDTH, TileReader, tile_index_path, tile_path
from agent.core.errors import VerificationError


def test_tile_paths() -> None:
    assert tile_index_path(0) == "000"
    assert tile_index_path(1234067) == "x001/x234/067"
    assert tile_path(1, 5) == "tile/1/005"
    assert tile_path(0, 1000, 7) == "tile/0/x001/000.p/7"


def _tiles(store: LeafStore, size: int, *, drop_partials: bool = False) -> dict[str, bytes]:
    """Every tile of a tree of ``size`` leaves, as a log would serve it."""
    out: dict[str, bytes] = {}
    level = 0
    while (count := size >> (8 * level)) > 0:
        for t in range(0, (count + TILE_WIDTH - 1) // TILE_WIDTH):
            width = min(TILE_WIDTH, count - t * TILE_WIDTH)
            row = b"".join(store._node(8 * level, t * TILE_WIDTH + i) for i in range(width))
            out[tile_path(level, t, width)] = row
            if drop_partials and width < TILE_WIDTH:  # the grown tile stands in for the partial one
                del out[tile_path(level, t, width)]
                out[tile_path(level, t)] = row + b"\0" * 32 * (TILE_WIDTH - width)
        level += 1
    return out


@pytest.mark.parametrize("size", [1, 2, 255, 256, 257, 70_000])
def test_consistency_from_tiles_matches_the_store(tmp_path: Path, size: int) -> None:
    store = LeafStore(tmp_path)
    for i in range(size):
        store.append(leaf_hash(hashlib.sha256(b"%d" % i).digest()), sync=False)
    tiles = _tiles(store, size)
    reader = TileReader(tiles.__getitem__, size)
    for m in sorted({1, size // 3, size // 2, size - 1, size} - {0}):
        proof = reader.consistency_proof(m)
        assert proof == store.consistency_proof(m, size)
        verify_consistency(m, size, proof, store.root(m), store.root(size))
    assert reader.mth(0, size) == store.root(size)
    store.close()


def test_grown_partial_tile_is_read_by_its_prefix(tmp_path: Path) -> None:
    store = LeafStore(tmp_path)
    for i in range(300):
        store.append(leaf_hash(b"%d" % i), sync=False)
    reader = TileReader(_tiles(store, 300, drop_partials=True).__getitem__, 300)
    assert reader.consistency_proof(100) == store.consistency_proof(100, 300)
    short = TileReader({tile_path(0, 0): b"\0" * 64}.__getitem__, 10)
    with pytest.raises(VerificationError, match="holds 2 hashes"):
        short.node(0, 3)
    store.close()
