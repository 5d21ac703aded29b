"""TLS for the Dask cluster: a private certificate authority, one certificate per role, and
the instructor's client `Security`.

    python -m dlcourse cluster certs DIR

writes `DIR/{scheduler,worker,client}/{ca.pem,cert.pem,key.pem}` (folder 0700, files 0600):
one folder to copy to each kind of machine. The CA's private key is never written anywhere:
nothing can issue another certificate that this cluster accepts; to replace the set, make a
new one and restart scheduler and workers with it. Scheduler and workers require a
certificate from this CA of everyone who connects (`distributed.security.Security`:
`CERT_REQUIRED`, TLS 1.2 at least); the client refuses any scheduler that has none.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from dlcourse import settings

ROLES = ("scheduler", "worker", "client")
CA_FILE, CERT_FILE, KEY_FILE = "ca.pem", "cert.pem", "key.pem"
WHERE = (
    "the scheduler's machine",
    "every worker machine",
    f"the instructor: autograde --certs (or {settings.CLUSTER_CERTS})",
)
VALID_DAYS = 398  # one academic year and a term's slack; renew by making a new set


class CertificatesRefused(RuntimeError):
    """Certificates missing, where grading kernels could read them, or already there."""


def readable_by_grading_kernels(path: Path) -> Path | None:
    """The sandbox mount (a system folder, Python, this package, a data folder) through which
    grading kernels could read `path`, or None: a key there could leave in a student's
    output."""
    from dlcourse.grader import sandbox

    real = path.expanduser().resolve()
    mounts = [Path(p).resolve() for p in sandbox.SYSTEM_DIRS]
    mounts += [source for source, _ in sandbox.readable_mounts()]
    return next((m for m in mounts if real.is_relative_to(m)), None)


def _exposed(folder: Path) -> str | None:
    mount = readable_by_grading_kernels(folder)
    if mount is None:
        return None
    return (
        f"{folder} is inside {mount}, which grading kernels can read (the sandbox mounts it): "
        f"keep the cluster's keys elsewhere, e.g. in the grading account's home"
    )


def client_security(folder: Path):
    """The instructor's `Security` from a role folder made by `make`: encryption required."""
    from distributed.security import Security

    if reason := _exposed(folder):
        raise CertificatesRefused(f"refusing the client certificate: {reason}")
    paths = role_files(folder)
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise CertificatesRefused(
            f"no client certificate in {folder} (missing {', '.join(missing)}): make one with "
            f"`python -m dlcourse cluster certs DIR` and pass --certs DIR/client"
        )
    return Security(
        require_encryption=True,
        tls_ca_file=str(paths[CA_FILE]),
        tls_client_cert=str(paths[CERT_FILE]),
        tls_client_key=str(paths[KEY_FILE]),
    )


def role_files(folder: Path) -> dict[str, Path]:
    return {name: folder / name for name in (CA_FILE, CERT_FILE, KEY_FILE)}


def make(folder: Path, days: int = VALID_DAYS) -> list[Path]:
    """A new CA and a key and certificate per role under `folder`; refuses to replace any."""
    from cryptography.hazmat.primitives import serialization

    if reason := _exposed(folder):
        raise CertificatesRefused(f"{reason} (nothing was written)")
    existing = [str(folder / r) for r in ROLES if (folder / r).exists()]
    if existing:
        raise CertificatesRefused(
            f"{', '.join(existing)} already exist: a running cluster may use them; choose "
            f"another folder (nothing was written)"
        )
    ca_key, ca_cert = _authority(days)
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    written = []
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for role in ROLES:
        key, cert = _leaf(role, ca_key, ca_cert, days)
        (folder / role).mkdir(mode=0o700)
        files = role_files(folder / role)
        contents = {
            CA_FILE: ca_pem,
            CERT_FILE: cert.public_bytes(serialization.Encoding.PEM),
            KEY_FILE: key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        }
        for name, data in contents.items():
            _write_private(files[name], data)
            written.append(files[name])
    return written


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _new_key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dlcourse grading cluster"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(subject, issuer, public_key, days: int):
    from cryptography import x509

    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # small clock skew
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(authority: bool):
    """A CA signs certificates and revocation lists; a leaf only signs its handshakes."""
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=not authority,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=authority,
        crl_sign=authority,
        encipher_only=False,
        decipher_only=False,
    )


def _authority(days: int):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    key = _new_key()
    name = _name("dlcourse grading cluster CA")
    usage = _key_usage(authority=True)
    cert = (
        _builder(name, name, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(role: str, ca_key, ca_cert, days: int):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key = _new_key()
    # Scheduler and workers listen and connect; the client only connects.
    purposes = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if role != "client":
        purposes.append(ExtendedKeyUsageOID.SERVER_AUTH)
    usage = _key_usage(authority=False)
    authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    cert = (
        _builder(_name(f"dlcourse-{role}"), ca_cert.subject, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage(purposes), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(f"dlcourse-{role}")]), critical=False
        )
        .add_extension(authority, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def command(folder: str) -> int:
    """`python -m dlcourse cluster certs DIR`."""
    target = Path(folder).expanduser().resolve()
    try:
        make(target)
    except CertificatesRefused as err:
        print(f"Refusing to make certificates: {err}")
        return 2
    print(f"certificates for the grading cluster in {target} (the CA key was not kept):")
    for role, where in zip(ROLES, WHERE, strict=True):
        print(f"  {target / role}/  ca.pem cert.pem key.pem  -> {where}")
    return 0
