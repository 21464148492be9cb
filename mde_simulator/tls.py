"""Throwaway key material for the simulator, kept in its state directory.

Everything here is generated locally with ``cryptography`` and is only good for
talking to the simulator on loopback:

* a CA certificate (``ca.pem``, public part only: this is the file clients
  trust) and a server certificate for ``127.0.0.1``, ``::1`` and ``localhost``
  signed by it (``server.pem`` + ``server-key.pem``). The CA's private key is
  never written: when the server certificate must be renewed, both are
  regenerated.
* the RSA key the simulated Entra ID signs access tokens with
  (``token-signing-key.pem``), so that tokens cached by a client survive a
  simulator restart on the same state directory.
* the default app's certificate credential: ``client-cert.pem`` (unencrypted
  private key + self-signed certificate, as ``openssl req -x509`` would make
  for an Entra app registration) and the same as PKCS#12 ``client-cert.pfx``.

Existing files are reused when they still parse and are valid for at least a
day; anything else is regenerated. Files holding private keys are mode 0600.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import os
import pathlib
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_SAN_IPS = ("127.0.0.1", "::1")
_SAN_DNS = ("localhost",)
_VALIDITY = dt.timedelta(days=825)
_MIN_REMAINING = dt.timedelta(days=1)


@dataclass(frozen=True)
class TlsMaterial:
    """Paths of the generated files plus the in-memory keys the server needs."""

    ca_cert: pathlib.Path
    server_cert: pathlib.Path
    server_key: pathlib.Path
    signing_key: rsa.RSAPrivateKey
    client_cert_pem: pathlib.Path
    client_cert_pfx: pathlib.Path
    client_cert_pfx_password: str
    client_certificate: x509.Certificate


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _write_private(path: pathlib.Path, data: bytes) -> None:
    """Atomically write ``data`` readable by the owner only."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _write_public(path: pathlib.Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _still_valid(cert: x509.Certificate) -> bool:
    now = _now()
    return cert.not_valid_before_utc <= now and cert.not_valid_after_utc - now > _MIN_REMAINING


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "MDE connector simulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(subject: x509.Name, issuer: x509.Name, public_key: Any) -> x509.CertificateBuilder:
    """A certificate builder with the fields every simulator certificate
    shares: a random serial and validity from five minutes ago."""
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )


def _make_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("MDE simulator throwaway CA")
    cert = (
        _builder(name, name, key.public_key())
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


def _make_server(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    san: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in _SAN_IPS]
    san += [x509.DNSName(name) for name in _SAN_DNS]
    cert = (
        _builder(_name("localhost"), ca_cert.subject, key.public_key())
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _server_pair_ok(ca_path: pathlib.Path, cert_path: pathlib.Path, key_path: pathlib.Path) -> bool:
    try:
        ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert.verify_directly_issued_by(ca)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
        names = set(san.get_values_for_type(x509.DNSName))
    except Exception:  # unreadable, foreign or tampered files are simply regenerated
        return False
    same_key = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return (
        same_key
        and _still_valid(ca)
        and _still_valid(cert)
        and set(_SAN_IPS) <= ips
        and set(_SAN_DNS) <= names
    )


def _ensure_server(state_dir: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path, pathlib.Path]:
    ca_path = state_dir / "ca.pem"
    cert_path = state_dir / "server.pem"
    key_path = state_dir / "server-key.pem"
    if not _server_pair_ok(ca_path, cert_path, key_path):
        ca_key, ca_cert = _make_ca()
        key, cert = _make_server(ca_key, ca_cert)
        _write_private(
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        _write_public(ca_path, ca_cert.public_bytes(serialization.Encoding.PEM))
    return ca_path, cert_path, key_path


def _ensure_signing_key(state_dir: pathlib.Path) -> rsa.RSAPrivateKey:
    path = state_dir / "token-signing-key.pem"
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048:
            return key
    except (OSError, ValueError, TypeError):
        pass
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_private(
        path,
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    return key


def make_client_certificate(
    common_name: str = "mde-connector-app",
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A fresh RSA key and self-signed certificate, usable as an app credential.

    Handy in tests that register a second app with :meth:`Simulator.add_app`.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = _name(common_name)
    cert = _builder(name, name, key.public_key()).sign(key, hashes.SHA256())
    return key, cert


def pem_bundle(key: rsa.RSAPrivateKey, cert: x509.Certificate) -> bytes:
    """Unencrypted PKCS#8 private key followed by the certificate, as PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ) + cert.public_bytes(serialization.Encoding.PEM)


def _ensure_client_cert(
    state_dir: pathlib.Path,
) -> tuple[pathlib.Path, pathlib.Path, x509.Certificate, str]:
    pem_path = state_dir / "client-cert.pem"
    pfx_path = state_dir / "client-cert.pfx"
    key = cert = None
    try:
        data = pem_path.read_bytes()
        loaded_key = serialization.load_pem_private_key(data, password=None)
        loaded_cert = x509.load_pem_x509_certificate(data)
        if isinstance(loaded_key, rsa.RSAPrivateKey) and _still_valid(loaded_cert):
            key, cert = loaded_key, loaded_cert
    except (OSError, ValueError, TypeError):
        pass
    if key is None or cert is None:
        key, cert = make_client_certificate()
        _write_private(pem_path, pem_bundle(key, cert))
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    pfx_password = f"pfx-{digest[:20]}"
    pfx_ok = False
    try:
        p_key, p_cert, _ = pkcs12.load_key_and_certificates(
            pfx_path.read_bytes(), pfx_password.encode()
        )
        pfx_ok = p_cert is not None and p_cert == cert
    except (OSError, ValueError, TypeError):
        pass
    if not pfx_ok:
        pfx = pkcs12.serialize_key_and_certificates(
            b"mde-simulator-app",
            key,
            cert,
            None,
            serialization.BestAvailableEncryption(pfx_password.encode()),
        )
        _write_private(pfx_path, pfx)
    return pem_path, pfx_path, cert, pfx_password


def ensure_material(state_dir: pathlib.Path) -> TlsMaterial:
    """Create (or reuse) every key and certificate the simulator needs.

    The PFX password is derived from the client certificate, so simulators
    with different seeds can share a state directory without rewriting it.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    ca, server_cert, server_key = _ensure_server(state_dir)
    signing_key = _ensure_signing_key(state_dir)
    pem, pfx, client_cert, pfx_password = _ensure_client_cert(state_dir)
    return TlsMaterial(
        ca_cert=ca,
        server_cert=server_cert,
        server_key=server_key,
        signing_key=signing_key,
        client_cert_pem=pem,
        client_cert_pfx=pfx,
        client_cert_pfx_password=pfx_password,
        client_certificate=client_cert,
    )


def sha1_thumbprint(cert: x509.Certificate) -> str:
    """The certificate's SHA-1 thumbprint as upper-case hex (what the Azure
    portal shows and what msal's ``thumbprint`` credential key expects)."""
    return cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - a thumbprint


def b64url(data: bytes) -> str:
    """Unpadded base64url, as used in JOSE headers."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def key_id(public_der: bytes) -> str:
    """A stable ``kid`` for a public key: base64url SHA-1 of its DER encoding."""
    return b64url(hashlib.sha1(public_der).digest())  # noqa: S324 - an identifier
