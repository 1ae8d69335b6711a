"""Helpers for the service tests: an in-process client and a real ``callsense serve`` subprocess."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
CALL = EXAMPLES / "call_stereo.wav"
CLIP = EXAMPLES / "clip_angry_zh.wav"

# A rule that always fires on a call where the customer speaks: makes "a rule hit" deterministic on
# random-weight models (whose words and emotions mean nothing).
TEST_RULES = """\
ruleset:
  id: test-pack
  version: "7"
  name: test pack
rules:
  - id: test.customer_spoke
    version: "1"
    name: 客户发言 Customer spoke
    category: test
    scope: {role: customer}
    conditions:
      1: {type: segment_count, above: 0}
    consequence: {severity: warning}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(get, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError("service did not become ready")


def assert_problem(resp: httpx.Response, status: int, code: str | None = None) -> dict:
    """The response is a problem-details error with this status (and code)."""
    assert resp.status_code == status, (resp.status_code, resp.text[:500])
    assert resp.headers["content-type"].startswith("application/problem+json"), resp.headers["content-type"]
    body = resp.json()
    assert body["status"] == status and body["detail"] and body["request_id"] == resp.headers["x-request-id"]
    if code is not None:
        assert body["code"] == code, body
    return body


class Server:
    """``python -m callsense serve`` in a subprocess, on a free port, with its own data folder."""

    def __init__(self, data_dir: Path, env: dict[str, str], *args: str, root_args: tuple[str, ...] = ()):
        self.data_dir = data_dir
        self.root_args = root_args  # options before ``serve``, e.g. ("-v",): libraries' warnings in the log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = args
        self.env = {**os.environ, **env, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
        self.proc: subprocess.Popen | None = None
        self._launched = False  # launch() ran and start() has not waited for that process yet
        self.log = data_dir / f"serve-{self.port}.log"

    def start(self, timeout: float = 90.0) -> Server:
        """Launch the server (unless :meth:`launch` just did) and wait until it is ready."""
        if not self._launched:
            self.launch()
        self._launched = False  # a later start() is a new process again
        return self.wait_ready(timeout)

    def launch(self) -> Server:
        """Start the process without waiting for it: its start-up can overlap other work; then :meth:`start`."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "callsense", *self.root_args, "serve", "--host", "127.0.0.1", "--port", str(self.port),
               "--data-dir", str(self.data_dir), *self.args]
        self._logf = open(self.log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self._logf, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self._launched = True
        return self

    def wait_ready(self, timeout: float = 90.0) -> Server:
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=5) as c:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log.read_text()[-3000:]}")
                with contextlib.suppress(httpx.TransportError):
                    if c.get("/readyz").status_code == 200:
                        return self
                time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"server not ready: {self.log.read_text()[-3000:]}")

    def client(self, key: str | None = None, timeout: float = 120.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, timeout=timeout, headers=headers)

    def kill(self) -> None:
        """SIGKILL: the process dies mid-work, as in a crash."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._logf.close()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        self._logf.close()

    def peak_rss_mb(self) -> float:
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        for line in text.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0


def stream_upload(port: int, path: str, *, headers: dict[str, str] | None = None, total: int = 64 << 20,
                  chunk: int = 64 << 10, timeout: float = 30.0) -> tuple[int, int]:
    """POST a chunked multipart body of ``total`` bytes (no Content-Length), stopping as soon as the
    server answers. Returns (status, body bytes handed to the socket before the answer came); the
    client's send buffer is kept small so that figure is close to what the server read."""
    import select

    boundary = "cs0boundary"
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Transfer-Encoding: chunked",
            f"Content-Type: multipart/form-data; boundary={boundary}", "Connection: close",
            *(f"{k}: {v}" for k, v in (headers or {}).items())]
    part = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.flac"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 << 10)
    try:
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + f"{len(part):x}\r\n".encode() + part + b"\r\n")
        sent, block = 0, b"\0" * chunk
        framed = f"{chunk:x}\r\n".encode() + block + b"\r\n"
        deadline = time.monotonic() + timeout
        s.setblocking(False)
        while time.monotonic() < deadline:
            readable, writable, _ = select.select([s], [s] if sent < total else [], [], 1.0)
            if readable:
                break
            if writable:
                try:
                    n = s.send(framed)
                except (BlockingIOError, InterruptedError):
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    break
                if n < len(framed):  # finish this frame before checking again
                    s.setblocking(True)
                    try:
                        s.sendall(framed[n:])
                    except (BrokenPipeError, ConnectionResetError):
                        break
                    finally:
                        s.setblocking(False)
                sent += chunk
        s.setblocking(True)
        data = b""
        while b"\r\n" not in data:
            got = s.recv(4096)
            if not got:
                break
            data += got
        return int(data.split(b" ", 2)[1]), sent
    finally:
        s.close()
