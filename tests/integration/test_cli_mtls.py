"""The CLI against an API on a mutual TLS domain: a local HTTPS server that requires a client
certificate signed by its truststore's CA (as API Gateway does with a custom domain's
truststore) answers the CLI given ``--client-cert``/``--client-key``, and refuses the
handshake without them."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from modelops_cli.main import main as modelops

MODEL_ID = "mdl-0123456789abcdef01234567"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA (the truststore), a server certificate for 127.0.0.1 and a client certificate."""
    root = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("modelops test truststore", ca_key, None, ca=True)
    _write(root / "ca", ca, ca_key)
    for name, server in (("server", True), ("client", False)):
        key = ec.generate_private_key(ec.SECP256R1())
        _write(
            root / name, _issue(f"modelops {name}", key, (ca.subject, ca_key), server=server), key
        )
    return root


class _Api(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        peer = self.connection.getpeercert()  # type: ignore[attr-defined]
        subject = dict(pair[0] for pair in peer["subject"])
        body = json.dumps(
            {
                "model": {"modelId": self.path.rsplit("/", 1)[-1], "status": "prod"},
                "clientCertificate": subject["commonName"],
                "signed": self.headers["Authorization"].startswith("AWS4-HMAC-SHA256"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        return None


@pytest.fixture(scope="module")
def mtls_api(pki: Path) -> Iterator[str]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki / "server.crt", pki / "server.key")
    context.load_verify_locations(pki / "ca.crt")
    context.verify_mode = ssl.CERT_REQUIRED  # no client certificate, no handshake
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def signing_identity(pki: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE12")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki / "ca.crt"))  # trust the test server


def test_the_cli_presents_its_client_certificate_and_still_signs_with_sigv4(
    mtls_api: str, pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = modelops(
        [
            "model",
            "get",
            MODEL_ID,
            "--endpoint-url",
            mtls_api,
            "--client-cert",
            str(pki / "client.crt"),
            "--client-key",
            str(pki / "client.key"),
            "--output",
            "json",
        ]
    )

    answer = json.loads(capsys.readouterr().out)
    assert code == 0
    assert answer["model"]["modelId"] == MODEL_ID
    assert (answer["clientCertificate"], answer["signed"]) == ("modelops client", True)


def test_without_a_client_certificate_the_mtls_domain_refuses_the_handshake(
    mtls_api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = modelops(["model", "get", MODEL_ID, "--endpoint-url", mtls_api, "--output", "json"])

    err = capsys.readouterr().err
    assert code == 1, err
    assert "error NETWORK: SSLError" in err, err


def test_a_certificate_without_its_key_is_a_usage_error(
    mtls_api: str, pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = modelops(
        ["model", "get", MODEL_ID, "--endpoint-url", mtls_api, "--client-cert", str(pki / "ca.crt")]
    )

    assert code == 2
    assert "--client-key" in capsys.readouterr().err
