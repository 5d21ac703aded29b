import socket
import urllib.request

import pytest

from conftest import NetworkBlocked
from dlcourse import data


def test_socket_to_the_internet_is_refused():
    with pytest.raises(NetworkBlocked):
        socket.create_connection(("93.184.215.14", 80), timeout=1)


def test_url_fetch_is_refused():
    with pytest.raises((NetworkBlocked, OSError)) as err:
        urllib.request.urlopen(
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
        )
    assert "network" in str(err.value) or "resolve" in str(err.value)


def test_loopback_still_works():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname(), timeout=1)
    client.close()
    server.close()


def test_download_fallback_is_blocked_in_tests(tmp_path, monkeypatch):
    """Even when a download is allowed, the guard stops it: tests never touch the network."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data, "search_dirs", lambda path=None: [tmp_path])
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(Exception) as err:
        data.load_mnist(allow_download=True)
    assert "network" in repr(err.value).lower() or "resolve" in repr(err.value).lower()
