"""A minimal OpenID Connect issuer on 127.0.0.1 for the deployed-stack test (scripts/deploy-local).

The template's JwtIssuer must be an https:// URL, and the HTTP API's JWT authorizer (on AWS, and on
ministack too) fetches `{issuer}/.well-known/openid-configuration`, then the `jwks_uri` it names, and
verifies RS256 signatures with those keys. So this serves both documents over HTTPS with a certificate
signed by a throw-away CA (ministack is started with SSL_CERT_FILE pointing at that CA), and mints
tokens signed with a throw-away RSA key.

    python oidc.py serve DIR      # writes DIR/{ca.pem,server.pem,server.key,signing.pem}, serves,
                                  # writes DIR/issuer once listening; runs until SIGTERM
    python oidc.py token DIR '{"sub": "42", ...}'   # prints a signed JWT (iss/aud/iat/exp added if absent)
    python oidc.py publish DIR https://issuer.example   # for real AWS: keys + DIR/public/.well-known/{
                                  # openid-configuration,jwks.json} to host at that https URL (API Gateway
                                  # must reach it); then deploy with JwtIssuer=that URL and run e2e.py --oidc DIR

Only `cryptography` is needed (it is in .tools/venv as a dependency of aws-sam-cli).
"""
from __future__ import annotations

import base64
import datetime
import http.server
import ipaddress
import json
import os
import signal
import ssl
import sys
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

KID = "postflow-deploy-local"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_material(directory: str) -> None:
    """A CA, a server certificate for 127.0.0.1/localhost signed by it, and the JWT signing key."""
    os.makedirs(directory, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "postflow deploy-local test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    srv_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    srv = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(srv_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(srv_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    signing = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write(os.path.join(directory, "ca.pem"), ca.public_bytes(serialization.Encoding.PEM))
    _write(os.path.join(directory, "server.pem"), srv.public_bytes(serialization.Encoding.PEM))
    _write(os.path.join(directory, "server.key"), _pem_key(srv_key))
    _write(os.path.join(directory, "signing.pem"), _pem_key(signing))


def _signing_key(directory: str):
    with open(os.path.join(directory, "signing.pem"), "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def jwks(directory: str) -> dict:
    numbers = _signing_key(directory).public_key().public_numbers()
    n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
    e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
    return {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": KID, "n": _b64url(n), "e": _b64url(e)}]}


def issuer(directory: str) -> str:
    with open(os.path.join(directory, "issuer")) as f:
        return f.read().strip()


def token(directory: str, claims: dict, *, key=None, kid: str = KID) -> str:
    """An RS256 JWT over `claims` (a copy: iss, iat and exp are added when absent)."""
    now = int(time.time())
    body = {"iss": issuer(directory), "iat": now, "exp": now + 3600, **claims}
    header = {"alg": "RS256", "typ": "JWT", "kid": kid}
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(body).encode())}"
    key = key or _signing_key(directory)
    sig = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64url(sig)}"


def documents(directory: str, base: str) -> tuple[dict, dict]:
    """The discovery document and the JWKS for issuer `base`."""
    discovery = {"issuer": base, "jwks_uri": f"{base.rstrip('/')}/.well-known/jwks.json",
                 "id_token_signing_alg_values_supported": ["RS256"],
                 "response_types_supported": ["id_token"], "subject_types_supported": ["public"]}
    return discovery, jwks(directory)


def publish(directory: str, base: str) -> None:
    make_material(directory)
    with open(os.path.join(directory, "issuer"), "w") as f:
        f.write(base + "\n")
    discovery, keys = documents(directory, base)
    well_known = os.path.join(directory, "public", ".well-known")
    os.makedirs(well_known, exist_ok=True)
    for name, doc in (("openid-configuration", discovery), ("jwks.json", keys)):
        with open(os.path.join(well_known, name), "w") as f:
            json.dump(doc, f, indent=1)
    print(f"host {well_known}/ at {base.rstrip('/')}/.well-known/ (https), then deploy with JwtIssuer={base}")


def serve(directory: str) -> None:
    make_material(directory)
    keys = jwks(directory)
    fetches = os.path.join(directory, "fetches.log")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server naming)
            base = issuer(directory)
            with open(fetches, "a") as log:
                log.write(f"{int(time.time())} GET {self.path}\n")
            if self.path == "/.well-known/openid-configuration":
                doc = documents(directory, base)[0]
            elif self.path == "/.well-known/jwks.json":
                doc = keys
            else:
                self.send_error(404)
                return
            body = json.dumps(doc).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):
            sys.stderr.write("[oidc] " + (fmt % args) + "\n")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(directory, "server.pem"), os.path.join(directory, "server.key"))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    tmp = os.path.join(directory, "issuer.tmp")
    with open(tmp, "w") as f:
        f.write(f"https://127.0.0.1:{port}\n")
    os.replace(tmp, os.path.join(directory, "issuer"))   # appears only once the socket listens
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.stderr.write(f"[oidc] issuer https://127.0.0.1:{port} serving discovery + JWKS\n")
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "serve":
        serve(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == "publish":
        publish(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 4 and sys.argv[1] == "token":
        print(token(sys.argv[2], json.loads(sys.argv[3])))
    else:
        sys.exit(__doc__)
