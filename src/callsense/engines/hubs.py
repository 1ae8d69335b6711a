"""Talking to the model hubs: a fast reachability probe, quiet downloads.

Without network a hub client can spend tens of seconds in retries and prints its own warnings in its
own log format. callsense therefore

* probes each hub first (:func:`unreachable`): one TCP connection to the hub's host (or to the HTTPS
  proxy) with a short timeout, run in a thread so that a slow DNS cannot hold it longer, and
  remembered for a minute; an unreachable hub is skipped without calling its library;
* downloads with the clients' retries and timeouts turned down and their loggers, warnings and
  progress bars silenced (:func:`download`); ``--debug`` keeps their logs.

Endpoints follow the clients' own settings: ``HF_ENDPOINT`` for Hugging Face, ``MODELSCOPE_ENDPOINT``
(or the older ``MODELSCOPE_DOMAIN``) for ModelScope.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
import warnings
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger("callsense")

PROBE_TIMEOUT_S = 2.0
PROBE_TTL_S = 60.0
DEFAULT_ENDPOINTS = {"modelscope": "https://www.modelscope.cn", "huggingface": "https://huggingface.co"}

_probes: dict[tuple[str, int], tuple[float, str | None]] = {}
_probe_lock = threading.Lock()


def endpoint(hub: str) -> str:
    """The base URL the hub's client will use."""
    if hub == "huggingface":
        return os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINTS[hub]
    url = os.environ.get("MODELSCOPE_ENDPOINT") or os.environ.get("MODELSCOPE_DOMAIN") or DEFAULT_ENDPOINTS[hub]
    return url if "://" in url else f"https://{url}"


def _target(url: str) -> tuple[str, int, str]:
    """(host, port, what) the client's first connection goes to: the HTTPS proxy when one is set."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    else:
        proxy = os.environ.get("HTTP_PROXY") or os.environ.get("http_proxy")
    if proxy:
        p = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        return p.hostname or "", p.port or 8080, f"proxy {p.hostname}:{p.port or 8080}"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "", port, f"{parts.hostname}:{port}"


def _connect(host: str, port: int, timeout: float) -> str | None:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return None
    except socket.gaierror:
        return "name not resolved"
    except ConnectionRefusedError:
        return "connection refused"
    except TimeoutError:
        return "timed out"
    except OSError as e:
        return e.strerror or type(e).__name__


def unreachable(hub: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """``None`` when ``hub`` answers a TCP connection, else why not (``"huggingface.co:443 unreachable (name not resolved)"``)."""
    host, port, what = _target(endpoint(hub))
    if not host:
        return f"{endpoint(hub)} unreachable (not a URL)"
    key = (host, port)
    with _probe_lock:
        cached = _probes.get(key)
        if cached and time.monotonic() - cached[0] < PROBE_TTL_S:
            return None if cached[1] is None else f"{what} unreachable ({cached[1]})"
    result: list[str | None] = []
    worker = threading.Thread(target=lambda: result.append(_connect(host, port, timeout)), daemon=True,
                              name="callsense-probe")
    worker.start()
    worker.join(timeout + 0.5)  # getaddrinfo has no timeout of its own: never wait on it longer
    reason = result[0] if result else f"no answer within {timeout:g} s"
    with _probe_lock:
        _probes[key] = (time.monotonic(), reason)
    return None if reason is None else f"{what} unreachable ({reason})"


def forget_probes() -> None:
    """Drop remembered probe results (tests; a network that came back)."""
    with _probe_lock:
        _probes.clear()


def quiet_clients(debug: bool | None = None) -> None:
    """Turn the hub clients' retries, timeouts, progress bars and loggers down (before and after import)."""
    debug = logging.getLogger("callsense").isEnabledFor(logging.DEBUG) if debug is None else debug
    for key, value in (("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("HF_HUB_ETAG_TIMEOUT", "10"),
                       ("HF_HUB_DISABLE_TELEMETRY", "1"), ("MODELSCOPE_API_MAX_RETRIES", "1"),
                       ("MODELSCOPE_API_CONNECT_TIMEOUT", "5"), ("MODELSCOPE_DOWNLOAD_MAX_RETRIES", "2")):
        os.environ.setdefault(key, value)
    level = logging.DEBUG if debug else logging.ERROR
    names = [n for n in list(logging.root.manager.loggerDict)
             if n.split(".")[0] in ("modelscope", "modelscope_hub", "huggingface_hub", "httpx", "httpx2", "httpcore",
                                    "urllib3", "filelock")]
    for name in names + ["modelscope", "modelscope_hub", "huggingface_hub"]:
        logging.getLogger(name).setLevel(level)


def download(hub: str, repo_id: str, target: Path, patterns: tuple[str, ...] | None, revision: str | None) -> None:
    """Download a repository snapshot into ``target`` (emptied first) with a quiet client."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    quiet_clients()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation and environment warnings of the clients
        if hub == "huggingface":
            from huggingface_hub import snapshot_download

            quiet_clients()
            snapshot_download(repo_id, local_dir=target, allow_patterns=list(patterns) if patterns else None,
                              revision=revision, etag_timeout=10)
        else:
            from modelscope.hub.snapshot_download import snapshot_download as ms_download

            quiet_clients()  # modelscope configures its loggers at import
            ms_download(repo_id, local_dir=str(target), allow_patterns=list(patterns) if patterns else None,
                        revision=revision)
