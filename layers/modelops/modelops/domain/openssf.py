"""OpenSSF model-signing v1.0 bundles (``method: files``), as model_signing 1.1.1 writes and
reads them, so that its stock verifier accepts ours::

    model_signing verify key <model_dir> --signature <model_dir>/model.sig --public_key key.pub

(``--public_key`` with an underscore: model_signing 1.1.1 has no ``--public-key`` option.)

Outer to inner: a Sigstore bundle (v0.3 JSON, a public-key hint, no transparency log entry)
holding a DSSE envelope, whose payload is an in-toto Statement v1 with one subject (the model
directory's name and root digest) and a predicate listing every file's SHA-256.

What the stock verifier (``model_signing verify key``) checks, and so what this module produces:

* the bundle parses as a Sigstore bundle: exactly ``mediaType``, ``verificationMaterial``
  (``publicKey.hint``, ``tlogEntries``) and ``dsseEnvelope``; unknown fields are refused;
* if ``publicKey.hint`` is set, it is the hex SHA-256 of the PEM (SubjectPublicKeyInfo) public
  key as cryptography writes it (not of the key file's bytes); the key must be ECDSA P-256,
  P-384 or P-521 and signs with the curve's hash (SHA-256 for P-256) over the DSSE v1 PAE of
  the payload; the signature is DER; only the first signature is checked;
* ``payloadType`` is ``application/vnd.in-toto+json``, the statement's ``_type`` and
  ``predicateType`` are in-toto Statement v1 and ``https://model_signing/signature/v1.0``;
* the subject digest is SHA-256 over the listed resource digests, in listed order;
* ``serialization`` must have ``method``, ``hash_type`` and ``allow_symlinks``; the CLI reads
  but does not compare them (it hashes with its own settings: SHA-256 per file, symlinks
  refused), the library API takes its hashing settings from them. ``ignore_paths`` is used by
  both: those paths are left out when the directory is re-hashed, together with ``.git``,
  ``.gitattributes``, ``.github`` and ``.gitignore`` at the top level and, for the CLI only,
  the ``--signature`` file;
* the re-hashed directory has exactly the listed files with the listed digests (an extra, a
  missing or a changed file is a rejection; the model name is informative only).

Resource order: model_signing sorts resources as paths, component by component, so
``config/a.json`` comes before ``config.json``; ``digests.resource_order`` and therefore
``Manifest.root_digest`` use the same order.

Building a bundle needs the standard library only; verifying goes through
``domain/crypto.py``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from modelops.domain.crypto import canonical_public_key, verify_ecdsa
from modelops.domain.digests import (
    SHA256_HEX,
    canonical_json,
    resource_order,
    root_digest,
    sha256_file,
)
from modelops.domain.manifest import GIT_PATHS, Manifest

__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "DEFAULT_IGNORE_PATHS",
    "GIT_PATHS",
    "IN_TOTO_PAYLOAD_TYPE",
    "IN_TOTO_STATEMENT_TYPE",
    "PREDICATE_TYPE",
    "SIGNATURE_FILE",
    "BadSignatureError",
    "BundleError",
    "KeyMismatchError",
    "MalformedBundleError",
    "PayloadTypeError",
    "ResourceMismatchError",
    "SubjectDigestError",
    "build_bundle",
    "pae",
    "public_key_hint",
    "public_key_pem",
    "statement",
    "verify_bundle",
]

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
IN_TOTO_STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
SIGNATURE_FILE = "model.sig"  # model_signing's default signature path, inside the model dir
# What model_signing always leaves out of a model directory (top level only).
# What model_signing's CLI records when it signs with the signature inside the directory.
DEFAULT_IGNORE_PATHS = (SIGNATURE_FILE, *GIT_PATHS)

# DER SubjectPublicKeyInfo of an ECDSA P-256 key (id-ecPublicKey, prime256v1): this prefix and
# a 65-byte uncompressed point. KMS GetPublicKey returns exactly this for ECC_NIST_P256.
_P256_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")
_P256_SPKI_BYTES = len(_P256_SPKI_PREFIX) + 65


class BundleError(ValueError):
    """A model signature bundle does not verify (or is not one)."""


class MalformedBundleError(BundleError):
    """The bundle, its envelope or its statement is not OpenSSF model-signing v1.0."""


class KeyMismatchError(BundleError):
    """The bundle's public-key hint names another key."""


class BadSignatureError(BundleError):
    """The DSSE signature does not verify with the public key."""


class PayloadTypeError(BundleError):
    """The DSSE payload is not an in-toto statement."""


class SubjectDigestError(BundleError):
    """The subject digest is not the root digest of the resources or of the directory."""


class ResourceMismatchError(BundleError):
    """A file of the directory differs from the signed resource list; ``path`` names it."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path!r}: {problem}")
        self.path = path


# --- Statement --------------------------------------------------------------------------------


def _ignore_path(path: str) -> str:
    if not isinstance(path, str) or not path or "\\" in path or "\x00" in path:
        raise ValueError(f"an ignored path is a non-empty POSIX path, got {path!r}")
    pure = PurePosixPath(path)
    if pure.is_absolute() or any(part in (".", "..") for part in path.split("/")):
        raise ValueError(f"an ignored path is relative to the model directory, got {path!r}")
    return pure.as_posix()  # no trailing or doubled '/'


def _is_under(path: str, ignored: str) -> bool:
    return path == ignored or path.startswith(ignored + "/")


def statement(
    model_name: str,
    manifest: Manifest,
    ignore_paths: Sequence[str] = DEFAULT_IGNORE_PATHS,
) -> dict[str, Any]:
    """The in-toto Statement v1 model_signing 1.1.1 signs for ``manifest`` (``method: files``).

    ``model_name`` is the subject name (model_signing uses the directory's name; verifiers do
    not compare it). ``ignore_paths`` are relative to the model directory and are recorded so
    that verifiers leave them out when re-hashing; the default is what model_signing's CLI
    records for a signature at ``<model_dir>/model.sig``. Listed sorted (model_signing writes
    them in set order). Manifest files under an ignored path are left out, as model_signing
    leaves them out when it hashes (so an old ``model.sig`` in the directory is not signed);
    the subject digest covers the listed resources only.
    """
    if not model_name:
        raise ValueError("the model name must not be empty")
    if isinstance(ignore_paths, str):
        raise TypeError("ignore_paths is a sequence of paths, not one string")
    ignored = sorted({_ignore_path(path) for path in ignore_paths})
    files = sorted(
        (f for f in manifest.files if not any(_is_under(f.path, path) for path in ignored)),
        key=lambda entry: resource_order(entry.path),
    )
    if not files:
        raise ValueError("every file of the manifest is under an ignored path")
    serialization: dict[str, Any] = {
        "method": "files",
        "hash_type": "sha256",
        "allow_symlinks": False,
    }
    if ignored:  # model_signing omits an empty list
        serialization["ignore_paths"] = ignored
    subject_digest = root_digest((entry.path, entry.sha256) for entry in files)
    return {
        "_type": IN_TOTO_STATEMENT_TYPE,
        "subject": [{"name": model_name, "digest": {"sha256": subject_digest}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": serialization,
            "resources": [
                {"name": entry.path, "algorithm": "sha256", "digest": entry.sha256}
                for entry in files
            ],
        },
    }


class _Statement:
    """The parts of a statement a verifier uses, checked for shape and self-consistency."""

    def __init__(self, value: object) -> None:
        if not isinstance(value, Mapping):
            raise MalformedBundleError("the statement is not a JSON object")
        if value.get("_type") != IN_TOTO_STATEMENT_TYPE:
            raise MalformedBundleError(f"statement _type is not {IN_TOTO_STATEMENT_TYPE}")
        if value.get("predicateType") != PREDICATE_TYPE:
            raise MalformedBundleError(f"predicateType is not {PREDICATE_TYPE}")
        subjects = value.get("subject")
        if not isinstance(subjects, list) or len(subjects) != 1:
            raise MalformedBundleError("the statement must have exactly one subject")
        self.subject_digest = _sha256_hex(_get(subjects[0], "digest", Mapping).get("sha256"))
        predicate = _get(value, "predicate", Mapping)
        serialization = _get(predicate, "serialization", Mapping)
        if serialization.get("method") != "files" or serialization.get("hash_type") != "sha256":
            raise MalformedBundleError("only method 'files' with hash_type 'sha256' is supported")
        if not isinstance(serialization.get("allow_symlinks"), bool):
            raise MalformedBundleError("serialization.allow_symlinks must be a boolean")
        ignore_paths = serialization.get("ignore_paths", [])
        if not isinstance(ignore_paths, list):
            raise MalformedBundleError("serialization.ignore_paths must be a list")
        try:
            self.ignore_paths = [_ignore_path(path) for path in ignore_paths]
        except ValueError as error:
            raise MalformedBundleError(str(error)) from None
        self.resources: dict[str, str] = {}
        for resource in _get(predicate, "resources", list):
            name = _get(resource, "name", str)
            if _get(resource, "algorithm", str) != "sha256":
                raise MalformedBundleError(f"resource {name!r}: only sha256 digests are supported")
            if name in self.resources:
                raise MalformedBundleError(f"resource {name!r} is listed twice")
            self.resources[name] = _sha256_hex(resource.get("digest"))
        if root_digest(self.resources.items()) != self.subject_digest:
            raise SubjectDigestError(
                "the subject digest is not the root digest of the statement's resources"
            )


def _get(container: object, key: str, kind: type[Any]) -> Any:
    value = container.get(key) if isinstance(container, Mapping) else None
    if not isinstance(value, kind):
        raise MalformedBundleError(f"missing or invalid {key!r}")
    return value


def _sha256_hex(value: object) -> str:
    if not isinstance(value, str) or not SHA256_HEX.match(value):
        raise MalformedBundleError(f"not a lower-case hex SHA-256: {value!r}")
    return value


# --- DSSE and the bundle ----------------------------------------------------------------------


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what the signature covers.

    ``"DSSEv1" SP len(type) SP type SP len(body) SP body``, lengths in bytes, in decimal.
    """
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)


def public_key_pem(der: bytes) -> bytes:
    """PEM of a DER SubjectPublicKeyInfo: the armour cryptography writes (64-column base64,
    trailing newline), so its SHA-256 is the hint model_signing computes for the same key."""
    if not der or der[0] != 0x30:
        raise ValueError("not a DER SubjectPublicKeyInfo")
    text = base64.b64encode(der).decode("ascii")
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return (
        "-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n"
    ).encode()


def public_key_hint(der: bytes) -> str:
    """``verificationMaterial.publicKey.hint``: hex SHA-256 of the PEM public key."""
    return hashlib.sha256(public_key_pem(der)).hexdigest()


def _is_der_ecdsa_signature(signature: bytes) -> bool:
    """SEQUENCE { INTEGER r, INTEGER s } with short-form lengths (every P-256 signature)."""
    if len(signature) < 8 or signature[0] != 0x30 or signature[1] != len(signature) - 2:
        return False
    offset = 2
    for _ in range(2):
        if offset + 2 > len(signature) or signature[offset] != 0x02:
            return False
        length = signature[offset + 1]
        if not 1 <= length <= 33:
            return False
        offset += 2 + length
    return offset == len(signature)


def build_bundle(
    statement: dict[str, Any],
    sign_digest: Callable[[bytes], bytes],
    public_key_der: bytes,
) -> dict[str, Any]:
    """The Sigstore bundle (``model.sig``) for ``statement``, signed with an ECDSA P-256 key.

    The payload is the statement as RFC 8785 canonical JSON. ``sign_digest`` receives the
    32-byte SHA-256 of the DSSE PAE and returns a DER ECDSA signature: in production KMS
    ``Sign`` with ``ECDSA_SHA_256`` and ``MessageType=DIGEST``. ``public_key_der`` is the key's
    DER SubjectPublicKeyInfo (KMS ``GetPublicKey``).
    """
    if len(public_key_der) != _P256_SPKI_BYTES or not public_key_der.startswith(_P256_SPKI_PREFIX):
        raise ValueError("the public key must be an uncompressed ECDSA P-256 key (DER SPKI)")
    _Statement(statement)  # refuse to sign what no verifier would accept
    body = canonical_json(statement)
    signature = sign_digest(hashlib.sha256(pae(IN_TOTO_PAYLOAD_TYPE, body)).digest())
    if not _is_der_ecdsa_signature(signature):
        raise ValueError("sign_digest must return a DER-encoded ECDSA signature")
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "publicKey": {"hint": public_key_hint(public_key_der)},
            "tlogEntries": [],
        },
        "dsseEnvelope": {
            "payload": base64.b64encode(body).decode("ascii"),
            "payloadType": IN_TOTO_PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode("ascii")}],
        },
    }


# --- Verification -----------------------------------------------------------------------------


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise MalformedBundleError(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise MalformedBundleError(f"{what} is not valid base64") from None


def _signed_statement(bundle: Mapping[str, Any], public_key_der: bytes) -> object:
    """Check the bundle's envelope and signature; return the signed statement (parsed JSON)."""
    if not isinstance(bundle, Mapping) or bundle.get("mediaType") != BUNDLE_MEDIA_TYPE:
        raise MalformedBundleError(f"not a Sigstore bundle with mediaType {BUNDLE_MEDIA_TYPE}")
    key_der = canonical_public_key(public_key_der)
    material = _get(bundle, "verificationMaterial", Mapping)
    hint = _get(material, "publicKey", Mapping).get("hint")
    if hint and hint != public_key_hint(key_der):  # no hint: model_signing only warns
        raise KeyMismatchError("the bundle's public-key hint names another key")
    envelope = _get(bundle, "dsseEnvelope", Mapping)
    payload_type = envelope.get("payloadType")
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise PayloadTypeError(f"payloadType is {payload_type!r}, not {IN_TOTO_PAYLOAD_TYPE}")
    signatures = _get(envelope, "signatures", list)
    if len(signatures) != 1:
        raise MalformedBundleError("the envelope must carry exactly one signature")
    signature = _b64(_get(signatures[0], "sig", str), "the signature")
    payload = _b64(envelope.get("payload"), "the payload")
    if not verify_ecdsa(key_der, signature, pae(payload_type, payload)):
        raise BadSignatureError("the DSSE signature does not verify with this public key")
    try:
        return json.loads(payload)
    except ValueError:
        raise MalformedBundleError("the payload is not JSON") from None


def _directory_files(model_dir: Path, ignore_paths: Sequence[str]) -> list[str]:
    """The files model_signing re-hashes: every regular file below ``model_dir`` except the
    ignored paths; a symlink anywhere is refused (model_signing checks before ignoring)."""
    ignored = [*ignore_paths, *GIT_PATHS]
    names = []
    for path in model_dir.rglob("*"):
        name = path.relative_to(model_dir).as_posix()
        if path.is_symlink():
            raise ResourceMismatchError(name, "is a symlink; signed models contain none")
        if path.is_file() and not any(_is_under(name, ignore) for ignore in ignored):
            names.append(name)
    return sorted(names, key=resource_order)


def verify_bundle(bundle: Mapping[str, Any], public_key_der: bytes, model_dir: Path) -> None:
    """Verify ``bundle`` against ``model_dir`` with nothing but the public key (DER SPKI).

    The checks the stock verifier makes, in this order: public-key hint, payload type, DSSE
    signature, statement shape, subject digest against the listed resources, then the
    directory re-hashed against the resources (first the file set, then each digest, reporting
    the first differing file in resource order) and its root digest against the subject.
    Skipped when re-hashing: the statement's ``ignore_paths`` and the top-level git paths, as
    model_signing's library API does (its CLI also skips the ``--signature`` file, which our
    statements list anyway). Raises a :class:`BundleError` subclass; returns ``None`` when the
    model matches.
    """
    signed = _Statement(_signed_statement(bundle, public_key_der))
    if not model_dir.is_dir():
        raise ValueError(f"{model_dir} is not a directory")
    names = _directory_files(model_dir, signed.ignore_paths)
    on_disk = set(names)
    differing = sorted(on_disk ^ signed.resources.keys(), key=resource_order)
    if differing and differing[0] in on_disk:
        raise ResourceMismatchError(differing[0], "is not in the signed statement (extra file)")
    if differing:
        raise ResourceMismatchError(differing[0], "is signed but missing from the directory")
    hashed = {name: sha256_file(model_dir / name)[0] for name in names}
    for name in names:
        if hashed[name] != signed.resources[name]:
            raise ResourceMismatchError(
                name, f"has sha256 {hashed[name]}, the signed digest is {signed.resources[name]}"
            )
    if root_digest(hashed.items()) != signed.subject_digest:
        raise SubjectDigestError("the directory's root digest is not the signed subject digest")
