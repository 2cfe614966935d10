"""Evidence from an unknown source against the real `evidence-agent verify` process.

Before the trust-boundary work: an impersonating vault (records of cam-victim signed by cam-evil's genuine
certificate) and a vault signed by a certificate that a *device* certificate issued both passed
``verify --ca``; a fully fabricated vault verified with exit 0 without --ca; hostile bundle members
(zip bomb, symlink, ``../`` names, malformed manifest/anchor members, a record without ``captured``)
read files outside the evidence, took gigabytes, or ended in a traceback.
"""

from __future__ import annotations

import io
import json
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.core.fsutil import atomic_write
from agent.signing.keys import CA_FILE, CERT_FILE, KEY_FILE, init_identity, issue_leaf, load_identity
from tests.support.fleet import agent_cli
from tests.support.hostile import ORG, Device, sidecar


def _verify(*args: str) -> tuple[int, dict[str, object], str]:
    res = agent_cli("verify", *args, "--json")
    assert "Traceback" not in res.stderr, res.stderr
    return res.returncode, json.loads(res.stdout), res.stdout


def _problems(doc: dict[str, object]) -> str:
    return json.dumps(doc["problems"])


@pytest.fixture(scope="module")
def fleet_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cam-evil's genuine identity from a fleet CA (ca.pem beside it)."""
    keys = tmp_path_factory.mktemp("keys") / "cam-evil"
    init_identity(keys, "cam-evil", ORG)
    return keys


@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory, fleet_keys: Path) -> Iterator[Device]:
    dev = Device(tmp_path_factory.mktemp("genuine"), "cam-evil", keys=fleet_keys)
    for i in range(3):
        dev.still(b"jpeg-%d" % i * 500)
    yield dev
    dev.close()


def test_genuine_vault_is_trusted_only_with_the_ca(genuine: Device, fleet_keys: Path) -> None:
    rc, doc, _ = _verify(str(genuine.vault.path), "--ca", str(fleet_keys / CA_FILE))
    assert rc == 0 and doc["trusted"] is True
    rc, doc, _ = _verify(str(genuine.vault.path))
    assert rc == 3 and doc["ok"] is True and doc["trusted"] is False  # before: exit 0


def test_impersonation_with_a_genuine_certificate_is_refused(tmp_path: Path, fleet_keys: Path) -> None:
    fake = Device(tmp_path, "cam-victim", keys=fleet_keys)  # signs as cam-victim with cam-evil's key
    fake.still(b"forged" * 100)
    fake.close()
    rc, doc, _ = _verify(str(fake.vault.path), "--ca", str(fleet_keys / CA_FILE))
    assert rc == 1 and "certificate is for 'cam-evil', not 'cam-victim'" in _problems(doc)


def test_a_device_certificate_cannot_issue_another_device(tmp_path: Path, fleet_keys: Path) -> None:
    evil = load_identity(fleet_keys)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "cam-victim"),
                         x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, ORG)])
    forged = issue_leaf(evil.private_key, evil.cert, subject, key.public_key())
    keys = tmp_path / "forged-keys"
    keys.mkdir()
    atomic_write(keys / KEY_FILE, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    atomic_write(keys / CERT_FILE, forged.public_bytes(serialization.Encoding.PEM))
    atomic_write(keys / CA_FILE, evil.chain_pem())  # the "intermediate" is cam-evil's leaf, then the real CA
    fake = Device(tmp_path / "v", "cam-victim", keys=keys)
    fake.close()
    rc, doc, _ = _verify(str(fake.vault.path), "--ca", str(fleet_keys / CA_FILE))
    assert rc == 1 and "cA must be asserted" in _problems(doc)


def _bundle(genuine: Device, tmp_path: Path, extra: dict[str, bytes | zipfile.ZipInfo]) -> Path:
    base = tmp_path / "base.zip"
    assert agent_cli("export", str(genuine.vault.path), "--out", str(base)).returncode == 0
    out = tmp_path / "hostile.zip"
    with zipfile.ZipFile(base) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename not in extra:
                dst.writestr(info, src.read(info))
        for name, data in extra.items():
            if isinstance(data, zipfile.ZipInfo):
                dst.writestr(data, b"/etc/passwd")
            else:
                dst.writestr(name, data)
    return out


def test_hostile_bundle_members_are_named_problems(genuine: Device, tmp_path: Path, fleet_keys: Path) -> None:
    link = zipfile.ZipInfo("items/000000/000000000001.still.jpg")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    no_captured = genuine.forge(genuine.still(b"x" * 10), captured=None)
    extra: dict[str, bytes | zipfile.ZipInfo] = {
        "items/000000/000000000009.still.jpg": b"\0" * (64 << 20),  # inflates ~1000x
        "items/000000/000000000001.still.jpg": link,
        "../outside.rec": b"x",
        "MANIFEST.json": json.dumps({"first_seq": "zero"}).encode(),
        "log/anchors/junk.json": b"{not json",
        "log/proofs.json": b"[" * 50_000,
        "log/checkpoints/1.note": b"junk",
        "items/000000/000000000007.event.rec": b"[" * 100_000 + b"\n{}",
        "items/000000/000000000005.still.rec": no_captured,
    }
    rc, doc, _ = _verify(str(_bundle(genuine, tmp_path, extra)), "--ca", str(fleet_keys / CA_FILE))
    text = _problems(doc)
    assert rc == 1
    for expected in ("zip bomb refused", "symbolic link member refused", "path-like member name refused",
                     "first_seq 'zero' is not an integer", "nested too deeply", "no kind or no capture block",
                     "anchor"):
        assert expected in text, expected


def test_vault_folder_symlinks_and_path_names_are_refused(genuine: Device, tmp_path: Path, fleet_keys: Path) -> None:
    import shutil

    copy = tmp_path / "vault"
    shutil.copytree(genuine.vault.path, copy, symlinks=True)
    media = sorted(copy.rglob("*.still.jpg"))[0]
    media.unlink()
    media.symlink_to("/etc/passwd")
    item = genuine.still(b"y" * 10)
    escaped = genuine.forge(item, media={**item.record["media"], "name": "../../../../etc/passwd"})
    (copy / "items" / "000000" / Path(item.record_path).name).write_bytes(escaped)
    rc, doc, _ = _verify(str(copy), "--ca", str(fleet_keys / CA_FILE))
    text = _problems(doc)
    assert rc == 1 and "symbolic link refused" in text and "path-like names refused" in text
    assert "root:" not in json.dumps(doc)
    assert sidecar(item) != escaped


def test_fuzzed_bundles_and_vaults_through_the_cli(genuine: Device, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Hypothesis mutates one member of a real bundle (or one file of a vault copy) per example."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    base = tmp_path_factory.mktemp("fuzz") / "base.zip"
    assert agent_cli("export", str(genuine.vault.path), "--out", str(base)).returncode == 0
    with zipfile.ZipFile(base) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    names = sorted(members)

    @settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(name=st.sampled_from(names), cut=st.integers(0, 4000), junk=st.binary(max_size=64),
           as_folder=st.booleans())
    def run(name: str, cut: int, junk: bytes, as_folder: bool) -> None:
        mutated = dict(members)
        data = mutated[name]
        mutated[name] = data[:cut % (len(data) + 1)] + junk + data[cut % (len(data) + 1) + len(junk):]
        work = tmp_path_factory.mktemp("case")
        if as_folder:
            target = work / "vault"
            for member, payload in mutated.items():
                (target / member).parent.mkdir(parents=True, exist_ok=True)
                (target / member).write_bytes(payload)
        else:
            target = work / "b.zip"
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                for member, payload in mutated.items():
                    z.writestr(member, payload)
            target.write_bytes(buf.getvalue())
        res = agent_cli("verify", str(target), "--json")
        assert "Traceback" not in res.stderr, (name, res.stderr[-2000:])
        assert res.returncode in (0, 1, 3), (name, res.returncode, res.stderr[-500:])
        json.loads(res.stdout)

    run()
