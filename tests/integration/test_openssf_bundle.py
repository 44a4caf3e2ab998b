"""OpenSSF model-signing v1.0 bundles signed through the local cloud's KMS (ECC_NIST_P256,
ECDSA_SHA_256, MessageType=DIGEST) pass the stock verifier from model-signing 1.1.1, and
tampering fails both it and ours."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from modelops.domain import openssf
from modelops.domain.manifest import Manifest
from tests.integration.moto_kms import kms_client

REGION = "us-east-1"
ROOT = Path(__file__).resolve().parents[2]
VERIFIER = ROOT / "build" / "verifier" / "bin"
MODEL_SIGNING = VERIFIER / "model_signing"


@pytest.fixture(scope="module", autouse=True)
def stock_verifier() -> None:
    """The stock verifier lives in its own venv (see the Makefile's ``verifier`` target)."""
    subprocess.run(["make", "-s", "verifier"], cwd=ROOT, check=True, capture_output=True)
    assert MODEL_SIGNING.exists()


# A file next to a directory sharing its prefix: model_signing orders "config/..." first.
MODEL_FILES = {
    "config.json": b'{"architecture": "mlp", "layers": 3}\n',
    "config/tokenizer.json": b'{"vocab": ["a", "b", "c"]}\n',
    "weights/model-00001.bin": random.Random(7).randbytes(1536 * 1024),  # > one 1 MiB chunk
    "README.md": b"# iris classifier\n",
    ".gitignore": b"*.pyc\n",  # ignored by both verifiers
    ".git/HEAD": b"ref: refs/heads/main\n",
}


@dataclass(frozen=True)
class KmsKey:
    kms: Any
    key_id: str
    public_key_der: bytes

    def sign_digest(self, digest: bytes) -> bytes:
        signature: bytes = self.kms.sign(
            KeyId=self.key_id,
            Message=digest,
            MessageType="DIGEST",
            SigningAlgorithm="ECDSA_SHA_256",
        )["Signature"]
        return signature


@pytest.fixture(scope="module")
def kms() -> Iterator[Any]:
    yield from kms_client()


def _p256_key(kms: Any) -> KmsKey:
    key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    return KmsKey(kms, key_id, kms.get_public_key(KeyId=key_id)["PublicKey"])


@pytest.fixture(scope="module")
def key(kms: Any) -> KmsKey:
    return _p256_key(kms)


@pytest.fixture(scope="module")
def other_key(kms: Any) -> KmsKey:
    return _p256_key(kms)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "iris-classifier"
    for name, content in MODEL_FILES.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(content)
    return directory


def _sign(model_dir: Path, key: KmsKey) -> tuple[Path, Path]:
    """Sign like the registry will: manifest, statement, bundle at <model_dir>/model.sig."""
    statement = openssf.statement(model_dir.name, Manifest.of_directory(model_dir))
    bundle = openssf.build_bundle(statement, key.sign_digest, key.public_key_der)
    signature = model_dir / openssf.SIGNATURE_FILE
    signature.write_text(json.dumps(bundle), encoding="utf-8")
    public_key = model_dir.parent / "key.pub"
    public_key.write_bytes(openssf.public_key_pem(key.public_key_der))
    return signature, public_key


def _stock_verify(model_dir: Path, signature: Path, public_key: Path) -> tuple[int, str]:
    completed = subprocess.run(
        [
            str(MODEL_SIGNING),
            "verify",
            "key",
            str(model_dir),
            "--signature",
            str(signature),
            "--public_key",  # model_signing 1.1.1 spells it with '_'; '--public-key' is exit 2
            str(public_key),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return completed.returncode, completed.stdout + completed.stderr


def _bundle(signature: Path) -> dict[str, Any]:
    bundle: dict[str, Any] = json.loads(signature.read_text(encoding="utf-8"))
    return bundle


def _flip_one_byte(path: Path, offset: int = 0) -> None:
    content = bytearray(path.read_bytes())
    content[offset] ^= 0x01
    path.write_bytes(bytes(content))


# --- The good bundle ----------------------------------------------------------------------------


def test_stock_verifier_accepts_a_model_signed_through_local_kms(
    model_dir: Path, key: KmsKey
) -> None:
    signature, public_key = _sign(model_dir, key)

    returncode, output = _stock_verify(model_dir, signature, public_key)

    assert returncode == 0, output
    assert "Verification succeeded" in output


def test_our_verifier_accepts_the_good_bundle(model_dir: Path, key: KmsKey) -> None:
    signature, _ = _sign(model_dir, key)

    assert openssf.verify_bundle(_bundle(signature), key.public_key_der, model_dir) is None


def test_stock_python_api_accepts_it_using_the_recorded_ignore_paths(
    model_dir: Path, key: KmsKey
) -> None:
    # Unlike the CLI, the library API does not skip the signature file on its own: the
    # statement's ignore_paths (model.sig, .git*) are what keep it out of the re-hash.
    signature, public_key = _sign(model_dir, key)
    program = (
        "import sys; from model_signing import verifying; "
        "verifying.Config().use_elliptic_key_verifier(public_key=sys.argv[1])"
        ".verify(sys.argv[2], sys.argv[3])"
    )
    result = subprocess.run(
        [str(VERIFIER / "python"), "-c", program, str(public_key), str(model_dir), str(signature)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_bundle_has_the_fields_model_signing_reads(model_dir: Path, key: KmsKey) -> None:
    manifest = Manifest.of_directory(model_dir)
    signature, _ = _sign(model_dir, key)
    bundle = _bundle(signature)

    envelope = bundle["dsseEnvelope"]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    cryptography_pem = serialization.load_der_public_key(key.public_key_der).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert bundle["verificationMaterial"] == {
        "publicKey": {"hint": hashlib.sha256(cryptography_pem).hexdigest()},
        "tlogEntries": [],
    }
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert len(envelope["signatures"]) == 1
    assert statement["subject"] == [
        {
            "name": "iris-classifier",
            "digest": {"sha256": manifest.root_digest},
        }
    ]
    assert [r["name"] for r in statement["predicate"]["resources"]] == [
        "README.md",
        "config/tokenizer.json",
        "config.json",
        "weights/model-00001.bin",
    ]
    assert statement["predicate"]["serialization"] == {
        "method": "files",
        "hash_type": "sha256",
        "allow_symlinks": False,
        "ignore_paths": [".git", ".gitattributes", ".github", ".gitignore", "model.sig"],
    }


def test_public_key_pem_is_the_pem_cryptography_writes(key: KmsKey) -> None:
    loaded = serialization.load_der_public_key(key.public_key_der)

    assert openssf.public_key_pem(key.public_key_der) == loaded.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_pae_is_dsse_v1() -> None:
    # The example from the DSSE v1 protocol specification.
    assert openssf.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


# --- Agreement with model_signing's own signer ----------------------------------------------------


def _stock_sign(model_dir: Path, tmp_path: Path) -> tuple[Path, bytes]:
    """Sign with model_signing's CLI and a local P-256 key; returns the bundle and the key."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    private_pem = tmp_path / "stock.pem"
    private_pem.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    signature = model_dir / "model.sig"
    subprocess.run(
        [
            str(MODEL_SIGNING),
            "sign",
            "key",
            str(model_dir),
            "--private_key",
            str(private_pem),
            "--signature",
            str(signature),
        ],
        capture_output=True,
        timeout=60,
        check=True,
    )
    public_der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return signature, public_der


def test_statement_is_the_one_model_signing_signs_and_we_verify_its_bundle(
    model_dir: Path, tmp_path: Path
) -> None:
    signature, public_der = _stock_sign(model_dir, tmp_path)
    bundle = _bundle(signature)
    theirs = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    theirs["predicate"]["serialization"]["ignore_paths"].sort()  # written in set order

    ours = openssf.statement(model_dir.name, Manifest.of_directory(model_dir))

    assert ours == theirs
    openssf.verify_bundle(bundle, public_der, model_dir)


# --- Tampering ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["config/tokenizer.json", "weights/model-00001.bin"])
def test_one_flipped_byte_fails_both_verifiers_naming_the_file(
    model_dir: Path, key: KmsKey, name: str
) -> None:
    signature, public_key = _sign(model_dir, key)
    _flip_one_byte(model_dir / name, offset=len(MODEL_FILES[name]) // 2)

    returncode, output = _stock_verify(model_dir, signature, public_key)
    with pytest.raises(openssf.ResourceMismatchError) as excinfo:
        openssf.verify_bundle(_bundle(signature), key.public_key_der, model_dir)

    assert returncode != 0
    assert f"Hash mismatch for '{name}'" in output
    assert excinfo.value.path == name
    assert name in str(excinfo.value)


@pytest.mark.parametrize(
    ("change", "name", "stock_says"),
    [
        ("add", "weights/model-00002.bin", "Extra files found"),
        ("add", "config.yaml", "Extra files found"),
        ("remove", "README.md", "Missing files"),
    ],
)
def test_an_extra_or_missing_file_fails_both_verifiers_naming_the_file(
    model_dir: Path, key: KmsKey, change: str, name: str, stock_says: str
) -> None:
    signature, public_key = _sign(model_dir, key)
    if change == "add":
        (model_dir / name).write_bytes(b"not signed")
    else:
        (model_dir / name).unlink()

    returncode, output = _stock_verify(model_dir, signature, public_key)
    with pytest.raises(openssf.ResourceMismatchError) as excinfo:
        openssf.verify_bundle(_bundle(signature), key.public_key_der, model_dir)

    assert returncode != 0
    assert stock_says in output and name in output
    assert excinfo.value.path == name


def _other_keys_bundle(model_dir: Path, key: KmsKey, other_key: KmsKey) -> dict[str, Any]:
    return openssf.build_bundle(
        openssf.statement(model_dir.name, Manifest.of_directory(model_dir)),
        other_key.sign_digest,
        other_key.public_key_der,
    )


def _other_keys_signature_with_our_hint(
    model_dir: Path, key: KmsKey, other_key: KmsKey
) -> dict[str, Any]:
    bundle = _other_keys_bundle(model_dir, key, other_key)
    bundle["verificationMaterial"]["publicKey"]["hint"] = openssf.public_key_hint(
        key.public_key_der
    )
    return bundle


_Forgery = tuple[Callable[[Path, KmsKey, KmsKey], dict[str, Any]], type[openssf.BundleError], str]


@pytest.mark.parametrize(
    "forgery",
    [
        (_other_keys_bundle, openssf.KeyMismatchError, "Key mismatch"),
        (_other_keys_signature_with_our_hint, openssf.BadSignatureError, "Verification failed"),
    ],
    ids=["other-keys-bundle", "other-keys-signature-under-our-hint"],
)
def test_a_bundle_signed_by_another_key_fails_both_verifiers(
    model_dir: Path, key: KmsKey, other_key: KmsKey, forgery: _Forgery
) -> None:
    forge, error, stock_says = forgery
    _, public_key = _sign(model_dir, key)
    signature = model_dir / openssf.SIGNATURE_FILE
    bundle = forge(model_dir, key, other_key)
    signature.write_text(json.dumps(bundle), encoding="utf-8")

    returncode, output = _stock_verify(model_dir, signature, public_key)
    with pytest.raises(error):
        openssf.verify_bundle(bundle, key.public_key_der, model_dir)

    assert returncode != 0
    assert stock_says in output


def _resign(bundle: dict[str, Any], key: KmsKey, statement: dict[str, Any]) -> None:
    """Put ``statement`` in the envelope under the old signature (a forged payload)."""
    signed = openssf.build_bundle(statement, key.sign_digest, key.public_key_der)
    bundle["dsseEnvelope"]["payload"] = signed["dsseEnvelope"]["payload"]


def test_a_payload_changed_after_signing_is_a_bad_signature(model_dir: Path, key: KmsKey) -> None:
    signature, _ = _sign(model_dir, key)
    bundle = _bundle(signature)
    (model_dir / "README.md").write_bytes(b"# swapped\n")
    new_statement = openssf.statement(model_dir.name, Manifest.of_directory(model_dir))
    original_signature = bundle["dsseEnvelope"]["signatures"]
    _resign(bundle, key, new_statement)
    bundle["dsseEnvelope"]["signatures"] = original_signature

    with pytest.raises(openssf.BadSignatureError):
        openssf.verify_bundle(bundle, key.public_key_der, model_dir)


def test_a_payload_type_other_than_in_toto_is_refused(model_dir: Path, key: KmsKey) -> None:
    signature, _ = _sign(model_dir, key)
    bundle = _bundle(signature)
    bundle["dsseEnvelope"]["payloadType"] = "application/json"

    with pytest.raises(openssf.PayloadTypeError, match="application/json"):
        openssf.verify_bundle(bundle, key.public_key_der, model_dir)


def test_a_subject_digest_that_is_not_the_resources_root_is_refused(
    model_dir: Path, key: KmsKey
) -> None:
    statement = openssf.statement(model_dir.name, Manifest.of_directory(model_dir))
    statement["subject"][0]["digest"]["sha256"] = "0" * 64

    with pytest.raises(openssf.SubjectDigestError):
        openssf.build_bundle(statement, key.sign_digest, key.public_key_der)


# --- What build_bundle and statement refuse or leave out -------------------------------


def test_build_bundle_refuses_a_key_that_is_not_p256(model_dir: Path, kms: Any) -> None:
    key_id = kms.create_key(KeySpec="ECC_NIST_P384", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    statement = openssf.statement(model_dir.name, Manifest.of_directory(model_dir))

    with pytest.raises(ValueError, match="P-256"):
        openssf.build_bundle(
            statement, lambda _: b"", kms.get_public_key(KeyId=key_id)["PublicKey"]
        )


def test_build_bundle_refuses_a_signature_that_is_not_der(model_dir: Path, key: KmsKey) -> None:
    statement = openssf.statement(model_dir.name, Manifest.of_directory(model_dir))

    with pytest.raises(ValueError, match="DER"):
        openssf.build_bundle(statement, lambda _: b"\x01" * 64, key.public_key_der)


def test_statement_leaves_out_files_under_ignored_paths_like_model_signing(
    model_dir: Path,
) -> None:
    (model_dir / "model.sig").write_bytes(b"an old signature")
    (model_dir / "notes").mkdir()
    (model_dir / "notes" / "draft.txt").write_bytes(b"not part of the model")
    manifest = Manifest.of_directory(model_dir)

    statement = openssf.statement(
        model_dir.name, manifest, [*openssf.DEFAULT_IGNORE_PATHS, "notes"]
    )

    names = [resource["name"] for resource in statement["predicate"]["resources"]]
    assert "model.sig" not in names and "notes/draft.txt" not in names
    assert len(names) == len(manifest.files) - 2
    assert "notes" in statement["predicate"]["serialization"]["ignore_paths"]


@pytest.mark.parametrize("path", ["/etc", "../elsewhere", "a/./b", ""])
def test_statement_refuses_an_ignored_path_outside_the_model_directory(
    model_dir: Path, path: str
) -> None:
    with pytest.raises(ValueError, match="ignored path"):
        openssf.statement(model_dir.name, Manifest.of_directory(model_dir), [path])
