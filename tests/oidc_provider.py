"""A small OpenID Connect provider for the login tests (authorization code flow).

Standards-following where the app's login touches it: discovery
(``/.well-known/openid-configuration``), an authorization endpoint with a sign-in form,
the token endpoint (client authentication by HTTP Basic or form fields, the redirect URI
checked against the one authorized, PKCE S256 when the client sent a challenge, codes
used once), RS256-signed ID tokens (``iss``, ``sub``, ``aud``, ``exp``, ``iat``,
``nonce``, ``email``, ``name``, ``groups``) with the key published at ``/jwks``, and
``/userinfo``. The key is made afresh for each provider (joserfc, which Authlib uses).

It listens on 127.0.0.1 on a free port (bound to port 0), in a thread::

    with OIDCProvider(users={"ana@city.gov": ["leads"]}, client_id=…, client_secret=…,
                      redirect_uri=…) as idp:
        idp.issuer   # http://127.0.0.1:PORT
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

from joserfc import jwt
from joserfc.jwk import RSAKey


class OIDCProvider:
    """The provider (see the module docstring).

    Parameters
    ----------
    users
        E-mail → the groups claim of that user.
    client_id, client_secret
        The one registered client.
    redirect_uri
        Its one registered redirect URI.
    """

    def __init__(self, *, users: dict[str, list[str]], client_id: str, client_secret: str,
                 redirect_uri: str) -> None:
        self.users = users
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.key = RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(4),
                                                         "use": "sig", "alg": "RS256"})
        self.codes: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OIDCProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def metadata(self) -> dict[str, Any]:
        """The discovery document."""
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "end_session_endpoint": f"{self.issuer}/logout",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                      "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["sub", "email", "name", "groups"],
        }

    def claims(self, email: str) -> dict[str, Any]:
        """The user's claims."""
        return {"sub": hashlib.sha256(email.encode()).hexdigest()[:16], "email": email,
                "email_verified": True, "name": email.split("@")[0].title(),
                "groups": list(self.users[email])}

    def issue(self, code: str, form: dict[str, str], basic: tuple[str, str] | None
              ) -> tuple[int, dict[str, Any]]:
        """The token endpoint's answer: (HTTP status, JSON body)."""
        client = basic or (form.get("client_id", ""), form.get("client_secret", ""))
        if client != (self.client_id, self.client_secret):
            return 401, {"error": "invalid_client"}
        grant = self.codes.pop(code, None)  # a code is used once
        if form.get("grant_type") != "authorization_code" or grant is None \
                or grant["expires"] < time.time():
            return 400, {"error": "invalid_grant"}
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri"}
        if grant.get("code_challenge"):
            verifier = form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            if digest.rstrip(b"=").decode() != grant["code_challenge"]:
                return 400, {"error": "invalid_grant", "error_description": "PKCE"}
        now = int(time.time())
        claims = {**self.claims(grant["email"]), "iss": self.issuer, "aud": self.client_id,
                  "iat": now, "exp": now + 600, "auth_time": now}
        if grant.get("nonce"):
            claims["nonce"] = grant["nonce"]
        id_token = jwt.encode({"alg": "RS256", "kid": self.key.kid}, claims, self.key)
        access = secrets.token_urlsafe(24)
        self.tokens[access] = claims
        return 200, {"access_token": access, "token_type": "Bearer", "expires_in": 600,
                     "id_token": id_token, "scope": grant["scope"]}


def _handler(idp: OIDCProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def send_json(self, status: int, doc: dict[str, Any]) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def form(self) -> dict[str, str]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode()
            return {k: v[0] for k, v in parse_qs(raw).items()}

        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path == "/.well-known/openid-configuration":
                self.send_json(200, idp.metadata())
            elif url.path == "/jwks":
                self.send_json(200, {"keys": [idp.key.as_dict(private=False)]})
            elif url.path == "/authorize":
                self.authorize_form(query)
            elif url.path == "/userinfo":
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                claims = idp.tokens.get(token)
                if claims is None:
                    self.send_json(401, {"error": "invalid_token"})
                else:
                    self.send_json(200, idp.claims(claims["email"]))
            else:
                self.send_json(404, {"error": "not_found"})

        def authorize_form(self, query: dict[str, str]) -> None:
            if query.get("client_id") != idp.client_id or \
                    query.get("redirect_uri") != idp.redirect_uri or \
                    query.get("response_type") != "code":
                self.send_json(400, {"error": "invalid_request"})
                return
            hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" '
                             f'value="{html.escape(v)}">' for k, v in query.items())
            page = ("<!doctype html><title>Test identity provider</title>"
                    "<h1>Sign in to the test identity provider</h1>"
                    f'<form method="post" action="/authorize">{hidden}'
                    '<label>E-mail <input name="login" autocomplete="off"></label>'
                    '<button type="submit">Sign in</button></form>').encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def do_POST(self) -> None:
            url = urlparse(self.path)
            form = self.form()
            if url.path == "/authorize":
                email = form.get("login", "").strip().lower()
                if email not in idp.users or form.get("redirect_uri") != idp.redirect_uri:
                    self.send_json(403, {"error": "access_denied"})
                    return
                code = secrets.token_urlsafe(16)
                idp.codes[code] = {
                    "email": email, "redirect_uri": form["redirect_uri"],
                    "nonce": form.get("nonce"), "scope": form.get("scope", "openid"),
                    "code_challenge": form.get("code_challenge"), "expires": time.time() + 60}
                target = f"{form['redirect_uri']}?" + urlencode(
                    {"code": code, **({"state": form["state"]} if "state" in form else {})})
                self.send_response(302)
                self.send_header("Location", target)
                self.end_headers()
            elif url.path == "/token":
                basic = None
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                    from urllib.parse import unquote_plus

                    basic = (unquote_plus(user), unquote_plus(password))
                status, doc = idp.issue(form.get("code", ""), form, basic)
                self.send_json(status, doc)
            else:
                self.send_json(404, {"error": "not_found"})

    return Handler
