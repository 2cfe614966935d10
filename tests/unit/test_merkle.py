"""Known-answer tests from transparency-dev/merkle plus store/proof round trips."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

import pytest

from agent.anchor.merkle import (
    EMPTY_ROOT,
    LeafStore,
    leaf_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)
from agent.core.errors import VaultError, VerificationError

DATA = Path(__file__).resolve().parents[1] / "data" / "merkle"
TREE = json.loads((DATA / "tree.json").read_text())


def _b(v: str | None) -> bytes:
    return base64.b64decode(v or "")


def _proof(v: list[str] | None) -> list[bytes]:
    return [_b(p) for p in v or []]


def test_leaf_hashes_and_roots_match_published_vectors() -> None:
    leaves = [leaf_hash(bytes.fromhex(x)) for x in TREE["leaf_inputs_hex"]]
    assert [h.hex() for h in leaves] == TREE["leaf_hashes_hex"]
    for size, want in enumerate(TREE["root_hashes_hex"]):
        assert root_of(leaves[:size]).hex() == want
    assert EMPTY_ROOT.hex() == TREE["root_hashes_hex"][0]


def test_store_roots_match_published_vectors(tmp_path: Path) -> None:
    store = LeafStore(tmp_path)
    for x in TREE["leaf_inputs_hex"]:
        store.append(leaf_hash(bytes.fromhex(x)))
    for size, want in enumerate(TREE["root_hashes_hex"]):
        assert store.root(size).hex() == want
    store.close()


@pytest.mark.parametrize("path", sorted((DATA / "inclusion").glob("*.json")), ids=lambda p: p.stem)
def test_inclusion_vectors(path: Path, tmp_path: Path) -> None:
    v = json.loads(path.read_text())
    args = (_b(v["leafHash"]), v["leafIdx"], v["treeSize"], _proof(v["proof"]), _b(v["root"]))
    if v["wantErr"]:
        with pytest.raises(VerificationError):
            verify_inclusion(*args)
        return
    verify_inclusion(*args)
    # and our generator produces the same proof
    store = LeafStore(tmp_path)
    for x in TREE["leaf_inputs_hex"]:
        store.append(leaf_hash(bytes.fromhex(x)), sync=False)
    assert store.inclusion_proof(v["leafIdx"], v["treeSize"]) == _proof(v["proof"])


@pytest.mark.parametrize("path", sorted((DATA / "consistency").glob("*.json")), ids=lambda p: p.stem)
def test_consistency_vectors(path: Path, tmp_path: Path) -> None:
    v = json.loads(path.read_text())
    args = (v["size1"], v["size2"], _proof(v["proof"]), _b(v["root1"]), _b(v["root2"]))
    if v["wantErr"]:
        with pytest.raises(VerificationError):
            verify_consistency(*args)
        return
    verify_consistency(*args)
    store = LeafStore(tmp_path)
    for x in TREE["leaf_inputs_hex"]:
        store.append(leaf_hash(bytes.fromhex(x)), sync=False)
    assert store.consistency_proof(v["size1"], v["size2"]) == _proof(v["proof"])


def test_all_proofs_round_trip_up_to_70_leaves(tmp_path: Path) -> None:
    store = LeafStore(tmp_path)
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(70)]
    for h in leaves:
        store.append(h, sync=False)
    for n in range(1, 71):
        root = root_of(leaves[:n])
        assert store.root(n) == root
        for i in range(n):
            verify_inclusion(leaves[i], i, n, store.inclusion_proof(i, n), root)
        for m in range(0, n + 1):
            verify_consistency(m, n, store.consistency_proof(m, n), root_of(leaves[:m]), root)
    with pytest.raises(VerificationError):
        verify_inclusion(leaves[3], 4, 10, store.inclusion_proof(3, 10), root_of(leaves[:10]))


def test_store_reopens_and_repairs_torn_writes(tmp_path: Path) -> None:
    rng = random.Random(1)
    leaves = [rng.randbytes(32) for _ in range(37)]
    store = LeafStore(tmp_path)
    for h in leaves:
        store.append(h)
    root = store.root()
    store.close()
    store.close()  # idempotent
    with open(tmp_path / "leaves.bin", "ab") as f:
        f.write(b"torn")
    (tmp_path / "level-2.bin").unlink()
    with open(tmp_path / "level-1.bin", "r+b") as f:
        f.truncate(32 * 5)
    again = LeafStore(tmp_path)
    assert again.size == 37
    assert again.root() == root == root_of(leaves)
    assert again.leaves(3, 5) == leaves[3:5]
    again.close()


def test_readonly_store_recomputes_missing_cache_levels(tmp_path: Path) -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(21)]
    store = LeafStore(tmp_path)
    for h in leaves:
        store.append(h, sync=False)
    store.close()
    (tmp_path / "level-3.bin").unlink()
    with open(tmp_path / "leaves.bin", "ab") as f:
        f.write(b"half")  # a writer mid-append
    ro = LeafStore(tmp_path, readonly=True)
    assert ro.size == 21 and ro.root() == root_of(leaves)
    verify_inclusion(leaves[9], 9, 21, ro.inclusion_proof(9, 21), root_of(leaves))
    with pytest.raises(VaultError):
        ro.append(leaves[0])
    ro.close()
    assert (tmp_path / "leaves.bin").stat().st_size == 21 * 32 + 4  # untouched
