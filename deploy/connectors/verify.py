"""Verify a Vestibule admission token in a Python sale backend, offline, with PyJWT.

    pip install "pyjwt[crypto]"     # Debian: apt-get install python3-jwt

PyJWKClient fetches the gateway's JWKS, caches it and fetches again when a token names a key
it has not seen (a rotation). Usage: python3 verify.py <jwks_url> <event> <token> prints the
claims, or exits 1 with the reason.
"""

import json
import sys

import jwt


def verify(jwks: jwt.PyJWKClient, event: str, token: str) -> dict:
    key = jwks.get_signing_key_from_jwt(token)  # by the token's kid
    claims = jwt.decode(token, key.key, algorithms=["EdDSA"], options={"require": ["exp", "sub", "jti"]})
    if claims.get("ev") != event:
        raise jwt.InvalidTokenError(f"an admission to {claims.get('ev')}, not {event}")
    return claims


if __name__ == "__main__":
    jwks_url, event, token = sys.argv[1:4]
    try:
        print(json.dumps(verify(jwt.PyJWKClient(jwks_url), event, token)))
    except jwt.PyJWTError as err:
        print(f"refused: {err}", file=sys.stderr)
        sys.exit(1)
