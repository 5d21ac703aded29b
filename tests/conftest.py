"""Shared fixtures. Every test runs with the network blocked for this process."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


class NetworkBlocked(RuntimeError):
    pass


_LOOPBACK = ("127.", "::1", "localhost")


def _is_local(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = str(address[0])
    return host.startswith(_LOOPBACK) or host == "0.0.0.0"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Fail any test that tries to reach beyond loopback (kernels talk over loopback)."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guarded(method):
        def connect(self, address):
            if not _is_local(address):
                raise NetworkBlocked(f"test tried to open a network connection to {address}")
            return method(self, address)

        return connect

    monkeypatch.setattr(socket.socket, "connect", guarded(real_connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(real_connect_ex))
    monkeypatch.setattr(
        socket, "getaddrinfo", _guarded_getaddrinfo(socket.getaddrinfo), raising=True
    )
    yield


def _guarded_getaddrinfo(real):
    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not _is_local((host,)):
            raise NetworkBlocked(f"test tried to resolve {host}")
        return real(host, *args, **kwargs)

    return getaddrinfo


@pytest.fixture
def repo() -> Path:
    return REPO
