"""A local OAuth 2.0 token endpoint over HTTPS for the OAuth tests.

Standard library only (http.server + ssl), on 127.0.0.1, with a test CA
and a server certificate made by openssl in the test's directory.  It
speaks RFC 6749 section 4.1.3/6 (grant_type=refresh_token) and 4.4
(client_credentials), form-encoded, and answers JSON.

    ep = TokenServer(dirpath)            # started; ep.url, ep.ca_file
    ep.add_client("app", secret="s3")    # secret None: a public client
    ep.add_refresh("rt-0")               # a refresh token it honours
    ep.rotate = True                     # each refresh issues a new one
    ep.expires_in = 3600
    ep.fail_next(503)                    # the next request gets HTTP 503
    ep.requests                          # [Request], in order
    ep.stop()

It also answers RFC 7662 token introspection at /introspect (form
token=...), the way Dovecot's oauth2 passdb checks a token: an access
token it issued is {"active": true, "username": ep.username}.

Access tokens are "at-1", "at-2", ... for refresh grants and "cc-1",
"cc-2", ... for client credentials, and rotated refresh tokens "rt-1",
"rt-2", ..., so a test can give fakepop3 the tokens to accept up front.
"""

import json
import os
import ssl
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness


class Request:
    def __init__(self, form, status, answer):
        self.time = time.time()    # when the answer was sent
        self.form = form           # {name: value}
        self.status = status
        self.answer = answer       # the JSON object sent

    def __repr__(self):
        shown = {k: v for k, v in self.form.items() if k != "client_secret"}
        return "<%s -> %d %s>" % (shown, self.status, self.answer)


class TokenServer:
    def __init__(self, dirpath):
        self.dir = os.path.join(dirpath, "token-endpoint")
        os.makedirs(self.dir, exist_ok=True)
        self.ca_file, ca_key = harness.make_ca(self.dir, "token-ca",
                                               "ingestd token test CA")
        cert, key = harness.make_server_cert(self.dir, self.ca_file, ca_key,
                                             "token-server")
        self.clients = {}
        self.refresh = set()
        self.rotate = False
        self.expires_in = 3600
        self.requests = []
        self.introspections = []   # the tokens /introspect was asked about
        self.issued = set()
        self.username = None
        self._fail = []
        self._n = {"at": 0, "cc": 0, "rt": 0}
        self._lock = threading.Lock()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert, key)
        me = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n).decode()
                ctype = self.headers.get("Content-Type", "")
                if self.path.startswith("/introspect"):
                    status, answer = me._introspect(body)
                else:
                    status, answer = me._answer(body, ctype)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, fmt, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket,
                                            server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = "https://127.0.0.1:%d/token" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()
        harness._register(self)

    def __repr__(self):
        return "token endpoint %s" % self.url

    def stop(self):
        harness._unregister(self)
        self.httpd.shutdown()
        self.httpd.server_close()

    def add_client(self, client_id, secret=None):
        self.clients[client_id] = secret

    def add_refresh(self, token):
        self.refresh.add(token)

    def fail_next(self, status, error=None):
        """The next request gets this status (and error, if given)."""
        self._fail.append((status, error))

    def _next(self, kind):
        self._n[kind] += 1
        tok = "%s-%d" % (kind, self._n[kind])
        if kind != "rt":
            self.issued.add(tok)
        return tok

    def _introspect(self, body):
        form = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
        with self._lock:
            tok = form.get("token", "")
            self.introspections.append(tok)
            if tok in self.issued:
                return 200, {"active": True, "username": self.username}
            return 200, {"active": False}

    def _answer(self, body, ctype):
        with self._lock:
            form = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
            status, answer = self._decide(form, ctype)
            self.requests.append(Request(form, status, answer))
            return status, answer

    def _decide(self, form, ctype):
        if self._fail:
            status, error = self._fail.pop(0)
            return status, {"error": error or "temporarily_unavailable"}
        if not ctype.startswith("application/x-www-form-urlencoded"):
            return 400, {"error": "invalid_request",
                         "error_description": "not form-encoded"}
        cid = form.get("client_id")
        if cid not in self.clients or \
                self.clients[cid] != form.get("client_secret"):
            return 401, {"error": "invalid_client"}
        grant = form.get("grant_type")
        ok = {"token_type": "Bearer", "expires_in": self.expires_in}
        if grant == "refresh_token":
            rt = form.get("refresh_token")
            if rt not in self.refresh:
                return 400, {"error": "invalid_grant",
                             "error_description": "refresh token revoked"}
            ok["access_token"] = self._next("at")
            if self.rotate:
                self.refresh.discard(rt)
                new = self._next("rt")
                self.refresh.add(new)
                ok["refresh_token"] = new
            return 200, ok
        if grant == "client_credentials":
            ok["access_token"] = self._next("cc")
            return 200, ok
        return 400, {"error": "unsupported_grant_type"}
