"""Who signs the C2PA manifests: the user's certificate and key, else a certificate made for this install.

The per-install credentials are made on first use with ``cryptography``: a local certificate authority
("steadyswap local CA", self-signed, its private key thrown away once used) issues an ES256 signing
certificate; key, signing certificate and CA certificate are kept together in one file (mode 0600) in
``$STEADYSWAP_C2PA_DIR`` or the user data folder. C2PA's own rules refuse a self-signed signing certificate,
hence the two levels. No trust list holds that CA: readers report the signature as valid but its signer as
untrusted (``signingCredential.untrusted``), as they should, unless told to trust it (``steadyswap verify
--trust``). Give a certificate from a C2PA-trusted authority with ``--c2pa-cert``/``--c2pa-key`` (or
``$STEADYSWAP_C2PA_CERT``/``$STEADYSWAP_C2PA_KEY``) to be trusted.
"""

from __future__ import annotations

import datetime
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from steadyswap.errors import InputError, InputNotFoundError, UsageError

DIR_VARIABLE = "STEADYSWAP_C2PA_DIR"
CERT_VARIABLE = "STEADYSWAP_C2PA_CERT"
KEY_VARIABLE = "STEADYSWAP_C2PA_KEY"
INSTALL_FILE = "signer.pem"
LOCAL_CA_NAME = "steadyswap local CA"
SIGNER_NAME = "steadyswap signer"
_PEM = re.compile(rb"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----\s*", re.S)


@dataclass(frozen=True)
class Credentials:
    """A signing key and its certificate chain, both PEM; ``local``: made for this install, not trusted."""

    key_pem: bytes
    chain_pem: bytes
    algorithm: str
    local: bool


def install_folder() -> Path:
    """Where the per-install credentials live."""
    chosen = os.environ.get(DIR_VARIABLE)
    return Path(chosen).expanduser() if chosen else Path(platformdirs.user_data_dir("steadyswap")) / "c2pa"


def load_credentials(cert: str | None = None, key: str | None = None) -> Credentials:
    """The user's credentials (arguments, else environment variables), else this install's, made if missing.

    Raises:
        UsageError: only one of certificate and key given.
        InputNotFoundError: a given file does not exist.
        InputError: a file that is not a PEM certificate chain or private key, or a key of another kind
            than EC P-256/P-384, Ed25519 or RSA.
    """
    cert = cert or os.environ.get(CERT_VARIABLE) or None
    key = key or os.environ.get(KEY_VARIABLE) or None
    if (cert is None) != (key is None):
        raise UsageError("--c2pa-cert and --c2pa-key go together: give both, or neither to use this install's "
                         "own certificate")
    if cert is not None and key is not None:
        chain = _read(cert, "--c2pa-cert")
        key_pem = _read(key, "--c2pa-key")
        if not _blocks(chain, "CERTIFICATE"):
            raise InputError(f"--c2pa-cert {cert}: no PEM certificate in the file")
        return Credentials(key_pem, chain, _algorithm(key_pem, key), local=False)
    return install_credentials()


def install_credentials() -> Credentials:
    """This install's credentials, made on first use (written whole, then renamed, so two runs starting at
    once each end with a complete pair)."""
    path = install_folder() / INSTALL_FILE
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{INSTALL_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(make_local_credentials())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    data = path.read_bytes()
    keys = [block for block in _all_blocks(data) if block.split(b"\n")[0].endswith(b"PRIVATE KEY-----")]
    if not keys:
        raise InputError(f"{path}: no private key in this install's C2PA credentials; delete the file to make new ones")
    chain = b"".join(_blocks(data, "CERTIFICATE"))
    return Credentials(keys[0], chain, _algorithm(keys[0], str(path)), local=True)


def make_local_credentials(days: int = 3650) -> bytes:
    """PEM of a new EC P-256 key, its signing certificate and the local CA certificate that issued it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=days)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "steadyswap (this install)")])

    def usage(sign: bool) -> x509.KeyUsage:
        return x509.KeyUsage(digital_signature=sign, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=not sign,
                             crl_sign=not sign, encipher_only=False, decipher_only=False)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name(LOCAL_CA_NAME)).issuer_name(name(LOCAL_CA_NAME))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(usage(sign=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    signer = (x509.CertificateBuilder().subject_name(name(SIGNER_NAME)).issuer_name(ca.subject)
              .public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(start).not_valid_after(end)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(usage(sign=True), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
              .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return (key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            + signer.public_bytes(pem) + ca.public_bytes(pem))


def _read(path: str, flag: str) -> bytes:
    file = Path(path).expanduser()
    if not file.is_file():
        raise InputNotFoundError(f"{flag} {path}: no such file")
    try:
        return file.read_bytes()
    except OSError as e:
        raise InputError(f"{flag} {path}: cannot read ({e.strerror or e})") from e


def _all_blocks(data: bytes) -> list[bytes]:
    return [match.group(0).strip() + b"\n" for match in _PEM.finditer(data)]


def _blocks(data: bytes, kind: str) -> list[bytes]:
    return [block for block in _all_blocks(data) if block.startswith(f"-----BEGIN {kind}-----".encode())]


def _algorithm(key_pem: bytes, where: str) -> str:
    """The C2PA signing algorithm for a PEM private key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as e:
        raise InputError(f"{where}: not an unencrypted PEM private key ({e})") from e
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in ("secp256r1", "secp384r1"):
        return "es256" if key.curve.name == "secp256r1" else "es384"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    raise InputError(f"{where}: C2PA signs with EC P-256/P-384, Ed25519 or RSA keys; this is a {type(key).__name__}")
