"""RFC 9162 Merkle tree over a persisted, append-only leaf store.

Why a store and not a tree in memory: a device logs millions of records over its life. Leaf hashes live in
``leaves.bin`` (32 bytes each, appended and fsynced); completed perfect subtrees are cached per level in
``level-<L>.bin`` (rebuildable from the leaves), so a root, an inclusion or a consistency proof reads
O(log n) hashes from disk.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import threading
from collections.abc import Sequence
from pathlib import Path

from agent.core.errors import VaultError, VerificationError

HASH_LEN = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(hashes: Sequence[bytes]) -> bytes:
    """MTH over already-hashed leaves, iteratively (for verifiers holding the leaves in memory)."""
    if not hashes:
        return EMPTY_ROOT
    stack: list[tuple[int, bytes]] = []  # (subtree size, hash), sizes strictly decreasing
    for h in hashes:
        size, cur = 1, h
        while stack and stack[-1][0] == size:
            _, left = stack.pop()
            cur = node_hash(left, cur)
            size *= 2
        stack.append((size, cur))
    _, cur = stack.pop()
    while stack:
        _, left = stack.pop()
        cur = node_hash(left, cur)
    return cur


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 §2.1.3.2; raises VerificationError naming what failed."""
    if index < 0 or index >= size:
        raise VerificationError(f"inclusion: leaf index {index} outside tree of size {size}")
    if any(len(p) != HASH_LEN for p in proof) or len(leaf) != HASH_LEN:
        raise VerificationError("inclusion: proof or leaf hash has the wrong length")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise VerificationError("inclusion: proof longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("inclusion: proof shorter than the tree is deep")
    if r != root:
        raise VerificationError(f"inclusion: leaf {index} does not lead to the root of tree size {size}")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """RFC 9162 §2.1.4.2; raises VerificationError when the larger tree does not extend the smaller one."""
    if size1 < 0 or size2 < size1:
        raise VerificationError(f"consistency: size {size2} is smaller than {size1}")
    if any(len(p) != HASH_LEN for p in proof):
        raise VerificationError("consistency: proof hash has the wrong length")
    if size1 == size2:
        if proof:
            raise VerificationError("consistency: equal sizes need an empty proof")
        if root1 != root2:
            raise VerificationError(f"consistency: two different roots for tree size {size1}")
        return
    if size1 == 0:
        if proof:
            raise VerificationError("consistency: proof from the empty tree must be empty")
        return
    if not proof:
        raise VerificationError("consistency: empty proof")
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency: proof too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != root1 or sr != root2:
        raise VerificationError(f"consistency: tree size {size2} does not extend tree size {size1}")


class LeafStore:
    """Append-only Merkle log on disk. Thread-safe; one writer process.

    Crash safety: leaves are appended then fsynced; a torn last record (size not a multiple of 32) is cut on
    open, and level caches are trimmed or rebuilt to match the leaves.
    """

    def __init__(self, directory: Path, *, readonly: bool = False) -> None:
        self._dir = Path(directory)
        self._readonly = readonly
        self._lock = threading.RLock()
        if not readonly:
            self._dir.mkdir(parents=True, exist_ok=True)
        self._leaves = self._open("leaves.bin")
        self._levels: list[io.FileIO] = []  # level 1.. caches
        self._size = (os.fstat(self._leaves.fileno()).st_size // HASH_LEN) if readonly else self._repair()
        self._dirty: set[int] = set()  # indexes into [leaves, *levels] written since the last sync
        self._closed = False

    # --- files -----------------------------------------------------------------------------------------
    def _open(self, name: str) -> io.FileIO:
        path = self._dir / name
        try:
            if self._readonly and not path.exists():
                return io.FileIO(os.devnull, "r")  # an absent cache level: nodes are recomputed
            return io.FileIO(path, "r" if self._readonly else "a+")
        except OSError as exc:
            raise VaultError(f"merkle log: cannot open {path}: {exc}") from exc

    def _level_file(self, level: int) -> io.FileIO:
        while len(self._levels) < level:
            self._levels.append(self._open(f"level-{len(self._levels) + 1}.bin"))
        return self._levels[level - 1]

    def _repair(self) -> int:
        f = self._leaves
        end = os.fstat(f.fileno()).st_size
        if end % HASH_LEN:
            f.truncate(end - end % HASH_LEN)
            os.fsync(f.fileno())
        size = os.fstat(f.fileno()).st_size // HASH_LEN
        existing = 0
        while (self._dir / f"level-{existing + 1}.bin").exists():
            existing += 1
        for level in range(1, max(existing, size.bit_length()) + 1):
            want = size >> level
            lf = self._level_file(level)
            raw = os.fstat(lf.fileno()).st_size
            have = raw // HASH_LEN
            if have > want or raw % HASH_LEN:
                have = min(have, want)
                lf.truncate(have * HASH_LEN)
            for k in range(have, want):
                lf.write(node_hash(self._node(level - 1, 2 * k), self._node(level - 1, 2 * k + 1)))
        return size

    # --- reads -----------------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        with self._lock:
            return self._size

    def _node(self, level: int, index: int) -> bytes:
        """Hash of the perfect subtree of height ``level`` at position ``index``."""
        f = self._leaves if level == 0 else self._level_file(level)
        data = os.pread(f.fileno(), HASH_LEN, index * HASH_LEN)
        if len(data) != HASH_LEN and self._readonly and level > 0:  # a writer has not cached it yet
            return node_hash(self._node(level - 1, 2 * index), self._node(level - 1, 2 * index + 1))
        if len(data) != HASH_LEN:
            raise VaultError(f"merkle log: node ({level},{index}) missing in {self._dir}")
        return data

    def leaf(self, index: int) -> bytes:
        with self._lock:
            if not 0 <= index < self._size:
                raise VaultError(f"merkle log: leaf {index} outside log of size {self._size}")
            return self._node(0, index)

    def leaves(self, start: int = 0, end: int | None = None) -> list[bytes]:
        with self._lock:
            end = self._size if end is None else end
            data = os.pread(self._leaves.fileno(), (end - start) * HASH_LEN, start * HASH_LEN)
        return [data[i : i + HASH_LEN] for i in range(0, len(data), HASH_LEN)]

    def _mth(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]); start is always aligned to the largest power of two <= end-start."""
        n = end - start
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and start % n == 0:
            return self._node(n.bit_length() - 1, start // n)
        k = _split(n)
        return node_hash(self._mth(start, start + k), self._mth(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        with self._lock:
            size = self._size if size is None else size
            self._check_size(size)
            return self._mth(0, size)

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self._size:
            raise VaultError(f"merkle log: tree size {size} outside log of size {self._size}")

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 PATH(index, D[0:size])."""
        with self._lock:
            size = self._size if size is None else size
            self._check_size(size)
            if not 0 <= index < size:
                raise VaultError(f"merkle log: leaf {index} outside tree of size {size}")
            out: list[bytes] = []
            start, end, m = 0, size, index
            while end - start > 1:
                k = _split(end - start)
                if m < k:
                    out.append(self._mth(start + k, end))
                    end = start + k
                else:
                    out.append(self._mth(start, start + k))
                    start, m = start + k, m - k
            out.reverse()
            return out

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """RFC 9162 PROOF(size1, D[0:size2])."""
        with self._lock:
            size2 = self._size if size2 is None else size2
            self._check_size(size2)
            if not 0 <= size1 <= size2:
                raise VaultError(f"merkle log: consistency {size1} -> {size2} impossible")
            if size1 in (0, size2):
                return []
            out: list[bytes] = []
            start, end, m, whole = 0, size2, size1, True
            while True:
                n = end - start
                if m == n:
                    if not whole:
                        out.append(self._mth(start, end))
                    break
                k = _split(n)
                if m <= k:
                    out.append(self._mth(start + k, end))
                    end = start + k
                else:
                    out.append(self._mth(start, start + k))
                    start, m, whole = start + k, m - k, False
            out.reverse()
            return out

    # --- writes ----------------------------------------------------------------------------------------
    def append(self, leaf: bytes, *, sync: bool = True) -> int:
        """Append one leaf hash; returns its index. Level caches are extended as subtrees complete."""
        if len(leaf) != HASH_LEN:
            raise VaultError("merkle log: leaf hash must be 32 bytes")
        with self._lock:
            if self._closed or self._readonly:
                raise VaultError("merkle log: store is closed or read-only")
            index = self._size
            self._leaves.write(leaf)
            self._size += 1
            self._dirty.add(0)
            cur, level, pos = leaf, 0, index
            while pos & 1:
                left = self._node(level, pos - 1)
                cur = node_hash(left, cur)
                level, pos = level + 1, pos >> 1
                self._level_file(level).write(cur)
                self._dirty.add(level)
            if sync:
                self.sync()
            return index

    def sync(self) -> None:
        """Make appended leaves (and the level caches they completed) durable."""
        with self._lock:
            files = [self._leaves, *self._levels]
            for i in sorted(self._dirty):
                os.fsync(files[i].fileno())
            self._dirty.clear()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for f in [self._leaves, *self._levels]:
                f.close()


def pack_seq(seq: int) -> bytes:
    return struct.pack(">Q", seq)


def unpack_seqs(data: bytes) -> list[int]:
    return [v for (v,) in struct.iter_unpack(">Q", data[: len(data) - len(data) % 8])]
