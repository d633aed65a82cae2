"""A tiny backend using Latch: client credentials, password sign-in, access
token verification, refresh, logout. Standard library only (Python 3.8+):

    ISSUER=http://127.0.0.1:8080 CLIENT_ID=... CLIENT_SECRET=... \\
    DEMO_USERNAME=alice DEMO_PASSWORD='correct horse battery staple' python3 backend.py

It verifies the user's access token by asking Latch (RFC 7662 introspection),
which needs no JWT library and also sees a revocation. A service that checks
the signature locally uses PyJWT instead, as the README shows.
"""
import base64
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

ISSUER = os.environ["ISSUER"].rstrip("/")
CLIENT = (os.environ["CLIENT_ID"], os.environ["CLIENT_SECRET"])


def call(path, want, token=None, body=None, form=None, basic=None):
    headers = {}
    data = None
    if token:
        headers["Authorization"] = "Bearer " + token
    if basic:
        pair = ":".join(urllib.parse.quote(p, safe="") for p in basic)
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    if form is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        data = urllib.parse.urlencode(form).encode()
    req = urllib.request.Request(ISSUER + path, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            status, raw = res.status, res.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    if status != want:
        raise RuntimeError(f"POST {path}: {status} {raw.decode(errors='replace')}")
    return json.loads(raw) if raw else None


def verify(access_token):
    """Asks Latch whether the token is active and for whom (introspection,
    authenticated as this client)."""
    info = call("/oidc/token/introspection", 200, form={"token": access_token}, basic=CLIENT)
    if not info.get("active") or info.get("iss") != ISSUER:
        raise RuntimeError(f"token not active: {info}")
    return info


def main():
    # 1. Client credentials: the backend's own token for Latch's API.
    token = call("/oidc/token", 200, form={"grant_type": "client_credentials"}, basic=CLIENT)["access_token"]
    print("client token: ok")

    # 2. Authenticate the user with a password.
    sign_in = call("/v1/auth/password/authenticate", 200, token=token,
                   body={"username": os.environ["DEMO_USERNAME"], "password": os.environ["DEMO_PASSWORD"]})
    print("authenticated: session", sign_in["session_id"])

    # 3. Verify the user's access token.
    claims = verify(sign_in["access_token"])
    print("verified: sub=" + claims["sub"])

    # 4. Refresh: the refresh token rotates, keep the new one.
    refreshed = call("/v1/auth/token/refresh", 200, token=token, body={"refresh_token": sign_in["refresh_token"]})
    verify(refreshed["access_token"])
    print("refreshed: ok")

    # 5. Log out: the session and its refresh tokens end, and introspection
    # now says the access token is no longer active.
    call("/v1/auth/session/logout", 204, token=token, body={"session_id": sign_in["session_id"]})
    call("/v1/auth/token/refresh", 400, token=token, body={"refresh_token": refreshed["refresh_token"]})
    if call("/oidc/token/introspection", 200, form={"token": refreshed["access_token"]}, basic=CLIENT).get("active"):
        raise RuntimeError("the access token is still active after logout")
    print("logged out: ok")


if __name__ == "__main__":
    try:
        main()
    except Exception as err:  # an example: report and fail
        print("example:", err, file=sys.stderr)
        sys.exit(1)
