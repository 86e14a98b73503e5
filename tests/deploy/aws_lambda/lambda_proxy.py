"""A real HTTP server in front of moto's: the parts of Lambda's API moto lacks or models per function, and faults.

moto 5.2 is enough for functions, versions and aliases, but not for what hangs off an alias:
- provisioned concurrency: moto answers an HTML 404 to PutProvisionedConcurrencyConfig and its siblings;
- function URLs: moto ignores `Qualifier` and keeps one URL per function, so `live` and a tag alias
  cannot have a URL each;
- resource policies: moto stores an alias' statements on the version the alias points at, so they
  move when the alias moves, and it accepts a statement id twice.
This proxy answers those paths itself, per (function, qualifier), with Lambda's response shapes and
errors (a qualifier must be an existing alias; a function URL cannot be on a numbered version;
provisioned concurrency never on $LATEST; a PUT of it answers IN_PROGRESS, a later GET READY; a
duplicate statement id is a ResourceConflictException), and forgets an alias' URL and policy when
DeleteAlias or DeleteFunction goes through. Every other request goes to moto unchanged.

`fail(...)` makes the next N requests matching a method and path answer a Lambda error (status,
`x-amzn-ErrorType` and a JSON body, as Lambda sends them) before moto sees them: how the tests produce
ResourceConflictException while "an update is in progress" and AccessDeniedException; `answer(...)`
returns a canned document instead (a GetFunction whose LastUpdateStatus is Failed).
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

_PROVISIONED = re.compile(r"^/2019-09-30/functions/(?P<name>[^/]+)/provisioned-concurrency$")
_URL = re.compile(r"^/2021-10-31/functions/(?P<name>[^/]+)/url$")
_POLICY = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/policy(?:/(?P<sid>[^/]+))?/?$")
_ALIAS = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/aliases/(?P<alias>[^/]+)$")
_FUNCTION = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)$")
ARN = "arn:aws:lambda:us-east-1:123456789012:function:{name}"
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te", "trailer"}


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    code: str
    message: str
    remaining: int
    document: dict[str, Any] | None = None  # a canned answer instead of an error
    skip: int = 0  # matching requests to let through first


class LambdaProxy:
    def __init__(self, upstream: str):
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self.provisioned: dict[tuple[str, str], int] = {}
        self.urls: dict[tuple[str, str], dict[str, Any]] = {}
        self.policies: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.faults_answered = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: with Nagle on, the body waits for the client's delayed
            # ACK, ~40 ms on every answer.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy._serve(self, body)

            do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        assert isinstance(host, str)
        return f"http://{host}:{port}"

    def start(self) -> LambdaProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def fail(self, method: str, path: str, status: int, code: str, message: str, times: int = 1) -> None:
        """Answer the next `times` requests matching `method` and the path regex with this Lambda error."""
        with self._lock:
            self._faults.append(Fault(method, re.compile(path), status, code, message, times))

    def answer(self, method: str, path: str, document: dict[str, Any], times: int = 1, skip: int = 0) -> None:
        """Answer `times` matching requests, after letting `skip` through, with this JSON document (200)."""
        with self._lock:
            self._faults.append(Fault(method, re.compile(path), 200, "", "", times, document, skip))

    # ------------------------------------------------------------------------------------------- serving

    def _serve(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        parts = urlsplit(request.path)
        fault = self._take_fault(request.command, parts.path)
        if fault is not None and fault.document is not None:
            self._json(request, fault.status, fault.document)
            return
        if fault is not None:
            self._error(request, fault.status, fault.code, fault.message)
            return
        qualifier = (parse_qs(parts.query).get("Qualifier") or [""])[0]
        if match := _PROVISIONED.match(parts.path):
            self._provisioned(request, unquote(match.group("name")), qualifier, body)
            return
        if match := _URL.match(parts.path):
            self._url(request, unquote(match.group("name")), qualifier, body)
            return
        if match := _POLICY.match(parts.path):
            self._policy(request, unquote(match.group("name")), qualifier, match.group("sid"), body)
            return
        status = self._forward(request, body)
        if request.command == "DELETE" and status < 300:  # what Lambda deletes along with an alias or function
            if match := _ALIAS.match(parts.path):
                self._forget(unquote(match.group("name")), unquote(match.group("alias")))
            elif match := _FUNCTION.match(parts.path):
                self._forget(unquote(match.group("name")), None)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.method == method and fault.path.search(path):
                    if fault.skip > 0:
                        fault.skip -= 1
                        continue
                    fault.remaining -= 1
                    self.faults_answered += 1
                    return fault
        return None

    def _forget(self, name: str, qualifier: str | None) -> None:
        with self._lock:
            for table in (self.urls, self.policies, self.provisioned):
                for key in [key for key in table if key[0] == name and qualifier in (None, key[1])]:
                    del table[key]

    def _forward(self, request: BaseHTTPRequestHandler, body: bytes) -> int:
        connection = http.client.HTTPConnection(*self._upstream, timeout=30)
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
            connection.request(request.command, request.path, body=body or None, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            request.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                    request.send_header(key, value)
            request.send_header("content-length", str(len(payload)))
            request.end_headers()
            if request.command != "HEAD":
                request.wfile.write(payload)
            return response.status
        finally:
            connection.close()

    def _url(self, request: BaseHTTPRequestHandler, name: str, qualifier: str, body: bytes) -> None:
        if qualifier.isdigit():
            self._error(request, 400, "InvalidParameterValueException",
                        "Function URLs are not supported on numbered versions; use an alias or $LATEST.")
            return
        if qualifier and qualifier != "$LATEST" and not self._qualifier_exists(name, qualifier):
            self._error(request, 404, "ResourceNotFoundException", f"Function not found: {ARN.format(name=name)}"
                        f":{qualifier}")
            return
        key = (name, "" if qualifier == "$LATEST" else qualifier)
        with self._lock:
            existing = self.urls.get(key)
            if request.command == "POST":
                if existing is not None:
                    self._error(request, 409, "ResourceConflictException",
                                f"Failed to create function url config for [functionArn = {ARN.format(name=name)}]. "
                                "Error message: FunctionUrlConfig exists for this Lambda function")
                    return
                document = json.loads(body or b"{}")
                arn = ARN.format(name=name) + (f":{key[1]}" if key[1] else "")
                created = {"FunctionUrl": f"https://{abs(hash(key)):x}.lambda-url.us-east-1.on.aws/",
                           "FunctionArn": arn, "AuthType": document.get("AuthType"),
                           "InvokeMode": document.get("InvokeMode") or "BUFFERED",
                           "CreationTime": time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime())}
                if document.get("Cors"):
                    created["Cors"] = document["Cors"]
                self.urls[key] = created
                self._json(request, 201, created)
            elif existing is None:
                self._error(request, 404, "ResourceNotFoundException", "The resource you requested does not exist.")
            elif request.command == "GET":
                self._json(request, 200, existing)
            elif request.command == "PUT":
                existing.update({k: v for k, v in json.loads(body or b"{}").items() if k in ("AuthType", "Cors",
                                                                                            "InvokeMode")})
                self._json(request, 200, existing)
            elif request.command == "DELETE":
                del self.urls[key]
                self._empty(request, 204)
            else:
                self._error(request, 405, "MethodNotAllowed", request.command)

    def _policy(self, request: BaseHTTPRequestHandler, name: str, qualifier: str, sid: str | None,
                body: bytes) -> None:
        if qualifier and not self._qualifier_exists(name, qualifier):
            self._error(request, 404, "ResourceNotFoundException", f"Function not found: {ARN.format(name=name)}"
                        f":{qualifier}")
            return
        key = (name, qualifier)
        with self._lock:
            statements = self.policies.setdefault(key, [])
            if request.command == "POST":
                document = json.loads(body or b"{}")
                if any(statement["Sid"] == document.get("StatementId") for statement in statements):
                    self._error(request, 409, "ResourceConflictException",
                                f"The statement id ({document.get('StatementId')}) provided already exists. Please "
                                "provide a new statement id, or remove the existing statement.")
                    return
                statement = self._statement(name, qualifier, document)
                statements.append(statement)
                self._json(request, 201, {"Statement": json.dumps(statement)})
            elif request.command == "GET":
                if not statements:
                    self._error(request, 404, "ResourceNotFoundException",
                                "The resource you requested does not exist.")
                    return
                policy = {"Version": "2012-10-17", "Id": "default", "Statement": statements}
                self._json(request, 200, {"Policy": json.dumps(policy), "RevisionId": str(len(statements))})
            elif request.command == "DELETE" and sid:
                kept = [statement for statement in statements if statement["Sid"] != unquote(sid)]
                if len(kept) == len(statements):
                    self._error(request, 404, "ResourceNotFoundException",
                                "No policy is associated with the given resource.")
                    return
                self.policies[key] = kept
                self._empty(request, 204)
            else:
                self._error(request, 405, "MethodNotAllowed", request.command)

    @staticmethod
    def _statement(name: str, qualifier: str, document: dict[str, Any]) -> dict[str, Any]:
        """AddPermission's parameters as the statement Lambda stores (GetPolicy's shape)."""
        statement: dict[str, Any] = {
            "Sid": document.get("StatementId"), "Effect": "Allow", "Principal": document.get("Principal"),
            "Action": document.get("Action"),
            "Resource": ARN.format(name=name) + (f":{qualifier}" if qualifier else ""),
        }
        condition: dict[str, dict[str, str]] = {}
        if document.get("FunctionUrlAuthType"):
            condition.setdefault("StringEquals", {})["lambda:FunctionUrlAuthType"] = document["FunctionUrlAuthType"]
        if document.get("InvokedViaFunctionUrl"):
            condition.setdefault("Bool", {})["lambda:InvokedViaFunctionUrl"] = "true"
        if condition:
            statement["Condition"] = condition
        return statement

    def _provisioned(self, request: BaseHTTPRequestHandler, name: str, qualifier: str, body: bytes) -> None:
        if not qualifier or qualifier == "$LATEST":
            self._error(request, 400, "InvalidParameterValueException",
                        "Provisioned Concurrency Configs cannot be applied to unpublished function versions.")
            return
        if not self._qualifier_exists(name, qualifier):
            self._error(request, 404, "ResourceNotFoundException",
                        f"Function not found: arn:aws:lambda:us-east-1:123456789012:function:{name}:{qualifier}")
            return
        key = (name, qualifier)
        if request.command == "PUT":
            wanted = int(json.loads(body or b"{}").get("ProvisionedConcurrentExecutions", 0))
            if wanted < 1:
                self._error(request, 400, "InvalidParameterValueException",
                            "ProvisionedConcurrentExecutions must be at least 1")
                return
            with self._lock:
                self.provisioned[key] = wanted
            self._json(request, 202, self._config(wanted, ready=False))
        elif request.command == "GET":
            with self._lock:
                wanted = self.provisioned.get(key, 0)
            if not wanted:
                self._error(request, 404, "ProvisionedConcurrencyConfigNotFoundException",
                            "No Provisioned Concurrency Config found for this function")
                return
            self._json(request, 200, self._config(wanted, ready=True))
        elif request.command == "DELETE":
            with self._lock:
                found = self.provisioned.pop(key, None)
            if found is None:
                self._error(request, 404, "ProvisionedConcurrencyConfigNotFoundException",
                            "No Provisioned Concurrency Config found for this function")
                return
            self._empty(request, 204)
        else:
            self._error(request, 405, "MethodNotAllowed", request.command)

    def _qualifier_exists(self, name: str, qualifier: str) -> bool:
        path = (f"/2015-03-31/functions/{name}/aliases/{qualifier}" if not qualifier.isdigit()
                else f"/2015-03-31/functions/{name}/configuration?Qualifier={qualifier}")
        connection = http.client.HTTPConnection(*self._upstream, timeout=30)
        try:
            connection.request("GET", path, headers={"Authorization": "AWS4-HMAC-SHA256 Credential=testing/"
                                                     "20260101/us-east-1/lambda/aws4_request"})
            response = connection.getresponse()
            response.read()
            return 200 <= response.status < 300  # moto answers GetAlias with 201
        finally:
            connection.close()

    @staticmethod
    def _config(wanted: int, *, ready: bool) -> dict[str, Any]:
        return {"RequestedProvisionedConcurrentExecutions": wanted,
                "AllocatedProvisionedConcurrentExecutions": wanted if ready else 0,
                "AvailableProvisionedConcurrentExecutions": wanted if ready else 0,
                "Status": "READY" if ready else "IN_PROGRESS",
                "LastModified": time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime())}

    @staticmethod
    def _empty(request: BaseHTTPRequestHandler, status: int) -> None:
        request.send_response(status)
        request.send_header("content-length", "0")
        request.end_headers()

    @staticmethod
    def _json(request: BaseHTTPRequestHandler, status: int, document: dict[str, Any]) -> None:
        payload = json.dumps(document).encode()
        request.send_response(status)
        request.send_header("content-type", "application/json")
        request.send_header("content-length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    @staticmethod
    def _error(request: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
        payload = json.dumps({"Type": "User", "message": message}).encode()
        request.send_response(status)
        request.send_header("x-amzn-ErrorType", code)
        request.send_header("content-type", "application/json")
        request.send_header("content-length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)


__all__ = ["LambdaProxy"]
