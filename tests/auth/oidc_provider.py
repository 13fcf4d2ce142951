"""A real OIDC provider process for the auth tests: oidc-provider-mock, signing with a key the test supplies.

The stock mock makes up a fresh key in memory. Giving it the test's key lets a test sign the
tokens the provider will not produce (expired, not yet valid, another issuer or audience) with
the provider's real key, so each check is proved on its own; starting it again with another key
is a key rotation. Run: python oidc_provider.py --port P --key private.pem
"""

import argparse
import os

os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")

import flask  # noqa: E402
import oidc_provider_mock  # noqa: E402
import werkzeug.serving  # noqa: E402
from authlib.jose import JsonWebKey  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True, help="PEM file of the RSA private signing key")
    args = parser.parse_args()

    with open(args.key, "rb") as pem:
        key = JsonWebKey.import_key(pem.read(), {"kty": "RSA"})
    app = oidc_provider_mock.app()

    @app.before_request
    def sign_with_the_given_key():
        flask.g.oidc_provider_mock_storage.jwk = key

    werkzeug.serving.run_simple("localhost", args.port, app, threaded=True)


if __name__ == "__main__":
    main()
