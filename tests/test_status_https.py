"""`python -m tools.status` against HTTPS endpoints: verified certificates, and what a failure means."""

from __future__ import annotations

import io
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import urllib3

from tests.test_status import API_KEY, FakeVllm, _handler
from tools import status

pytestmark = pytest.mark.timeout(60)


def self_signed(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A certificate for ``host`` (as vLLM would serve from a kubernetes.io/tls Secret), signed by itself."""
    cert, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", f"/CN={host}", "-addext", f"subjectAltName=IP:{host}",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def https_server(tmp_path) -> Iterator[tuple[str, Path]]:
    """A fake vLLM serving HTTPS on 127.0.0.1 with a self-signed certificate; yields (URL, its cert)."""
    cert, key = self_signed(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(FakeVllm(loading_polls=0)))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()
    server.server_close()


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = status.main(list(argv), env={"PATH": ""}, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_an_https_endpoint_whose_certificate_verifies_is_ready(https_server):
    url, cert = https_server
    code, out, _ = run("--endpoint", url, "--api-key", API_KEY, "--cacert", str(cert))
    assert code == status.EXIT_READY, out
    assert out.rstrip().endswith("READY")


def test_a_certificate_that_does_not_verify_reads_certificate_not_ready(https_server):
    url, _ = https_server
    code, out, _ = run("--endpoint", url, "--api-key", API_KEY)  # the system's CAs never signed it
    assert code == status.EXIT_NOT_READY
    assert "NOT READY: /health certificate not ready" in out
    assert "CERTIFICATE_VERIFY_FAILED" in out and "60 min" in out


def test_wait_keeps_polling_while_the_certificate_is_not_ready(https_server):
    url, _ = https_server
    code, out, err = run(
        "--endpoint", url, "--api-key", API_KEY, "--wait", "--timeout", "0.3", "--interval", "0.05"
    )
    assert code == status.EXIT_TIMEOUT
    assert "certificate not ready" in err and "TIMED OUT waiting: /health certificate not ready" in out


def test_a_missing_cacert_file_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as exited:
        run("--endpoint", "https://llm.example.com", "--cacert", str(tmp_path / "missing.pem"))
    assert exited.value.code == status.EXIT_CONFIG


def test_a_domain_that_does_not_resolve_yet_names_the_dns_record_to_create(monkeypatch):
    def unresolvable(self, url, **kwargs):
        request = requests.Request("GET", url).prepare()
        pool_error = urllib3.exceptions.NameResolutionError("llm.example.com", None, OSError("no such host"))
        retries = urllib3.exceptions.MaxRetryError(None, url, pool_error)
        raise requests.ConnectionError(retries, request=request)

    monkeypatch.setattr(requests.Session, "get", unresolvable)
    code, out, _ = run("--endpoint", "https://llm.example.com", "--api-key", API_KEY)
    assert code == status.EXIT_NOT_READY
    assert "llm.example.com does not resolve (yet)" in out and "dnsRecords" in out
