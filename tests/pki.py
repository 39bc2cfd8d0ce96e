"""A throw-away PKI for TLS tests: a CA, broker and client certificates, and the bad
ones — another CA, expired certificates — written as PEM files into a directory."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_KEY = ec.SECP256R1()


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    """A CA that signed nothing here: trusting only it, nothing verifies."""
    expired_server_cert: Path
    expired_client_cert: Path


def make_pki(directory: Path, client_name: str = "hazwatch") -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key, ca_cert = _ca("hazwatch test CA", now)
    other_key, other_cert = _ca("some other CA", now)
    del other_key
    server_key = ec.generate_private_key(_KEY)
    client_key = ec.generate_private_key(_KEY)
    valid = (now - dt.timedelta(days=1), now + dt.timedelta(days=30))
    expired = (now - dt.timedelta(days=30), now - dt.timedelta(days=1))

    def server(span: tuple[dt.datetime, dt.datetime]) -> x509.Certificate:
        return _signed(
            "localhost",
            server_key,
            ca_key,
            ca_cert,
            span,
            ExtendedKeyUsageOID.SERVER_AUTH,
            [x509.DNSName("localhost")],  # not 127.0.0.1: the host name check is tested
        )

    def client(span: tuple[dt.datetime, dt.datetime]) -> x509.Certificate:
        return _signed(
            client_name, client_key, ca_key, ca_cert, span, ExtendedKeyUsageOID.CLIENT_AUTH, []
        )

    files = {
        "ca": _pem(ca_cert),
        "server_cert": _pem(server(valid)),
        "server_key": _key_pem(server_key),
        "client_cert": _pem(client(valid)),
        "client_key": _key_pem(client_key),
        "other_ca": _pem(other_cert),
        "expired_server_cert": _pem(server(expired)),
        "expired_client_cert": _pem(client(expired)),
    }
    paths = {}
    for name, data in files.items():
        path = directory / f"{name}.pem"
        path.write_bytes(data)
        path.chmod(0o600)
        paths[name] = path
    return Pki(**paths)


def _ca(name: str, now: dt.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(_KEY)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _signed(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    span: tuple[dt.datetime, dt.datetime],
    usage: x509.ObjectIdentifier,
    alt_names: list[x509.GeneralName],
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(span[0])
        .not_valid_after(span[1])
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def tls_listener(port: int, pki: Pki, *, server_cert: Path | None = None) -> str:
    """Mosquitto config lines for a TLS listener on 127.0.0.1 that requires a client
    certificate signed by the test CA."""
    return (
        f"listener {port} 127.0.0.1\n"
        f"cafile {pki.ca}\n"
        f"certfile {server_cert or pki.server_cert}\n"
        f"keyfile {pki.server_key}\n"
        "require_certificate true\n"
    )
