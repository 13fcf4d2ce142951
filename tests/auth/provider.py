"""Start and drive a real OIDC provider process (tests/auth/oidc_provider.py) from the tests and the benchmark."""

import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.net import free_port

AUDIENCE = "orchestrator"
LAUNCHER = Path(__file__).with_name("oidc_provider.py")


def new_rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(private_key):
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class Provider:
    """One provider process; `rotate_key()` restarts it on the same address with a new signing key."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.process = None
        self.key = None
        self.log_path = self.workdir / "provider.log"

    def start(self, key):
        self.key = key
        key_path = self.workdir / f"key-{uuid.uuid4().hex}.pem"
        key_path.write_bytes(pem(key))
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, str(LAUNCHER), "--port", str(self.port), "--key", str(key_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"OIDC provider exited:\n{self.log_path.read_text()}")
            try:
                requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=1).raise_for_status()
                return
            except requests.RequestException:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"OIDC provider did not start:\n{self.log_path.read_text()}")

    def stop(self):
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def rotate_key(self):
        self.stop()
        self.start(new_rsa_key())

    def set_user(self, sub, claims):
        requests.put(f"{self.issuer}/users/{sub}", json=claims, timeout=5).raise_for_status()

    def id_token(self, sub, claims, *, client_id=AUDIENCE):
        """Sign `sub` in through the authorization code flow and return the id_token the provider issues."""
        self.set_user(sub, claims)
        redirect_uri = "http://agent.invalid/callback"
        authorized = requests.post(
            f"{self.issuer}/oauth2/authorize",
            params={
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "response_type": "code",
                "scope": "openid email",
                "state": "state",
            },
            data={"sub": sub},
            allow_redirects=False,
            timeout=5,
        )
        assert authorized.status_code == 302, authorized.text
        code = parse_qs(urlparse(authorized.headers["Location"]).query)["code"][0]
        tokens = requests.post(
            f"{self.issuer}/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "client_id": client_id,
                "client_secret": "agent-secret",
            },
            timeout=5,
        )
        tokens.raise_for_status()
        return tokens.json()["id_token"]

    def claims(self, sub="agent-1", **overrides):
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 300, "role": "finance"}
        claims.update(overrides)
        return claims

    def sign(self, claims, *, key=None, headers=None):
        """A token signed like the provider's own (RS256, the provider's key unless told otherwise)."""
        return jwt.encode(claims, pem(key or self.key), algorithm="RS256", headers=headers)

    def jwks_fetches_logged(self):
        return len(re.findall(r'"GET /jwks HTTP', self.log_path.read_text()))
