"""Single-instance socket under abuse: huge, endless, flooding, trickling and resetting clients.

``test_single_instance.py`` covers the protocol, the socket's permissions, garbage, partial,
overlong and silent clients, stale sockets and a live instance.  Here the attacks run from
client threads while the event loop is watched: it must keep ticking (no hang), every attacker
must be cut off, no file descriptor may leak, and a real command must still get through.
"""

from __future__ import annotations

import os
import socket
import stat
import struct
import threading
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QElapsedTimer, QTimer

from im2latex_desktop import paths, single_instance
from im2latex_desktop.single_instance import InstanceServer, encode, send_command


class LoopWatch:
    """Samples the event loop every 10 ms; ``worst_ms`` is the longest it was kept from ticking."""

    def __init__(self) -> None:
        self.clock = QElapsedTimer()
        self.clock.start()
        self.last = 0
        self.worst_ms = 0
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self) -> None:
        now = self.clock.elapsed()
        self.worst_ms = max(self.worst_ms, now - self.last)
        self.last = now

    def stop(self) -> int:
        self.timer.stop()
        return self.worst_ms


@pytest.fixture
def server(qtbot, monkeypatch):
    monkeypatch.setattr(single_instance, "CLIENT_TIMEOUT_MS", 400)
    srv = InstanceServer()
    assert srv.listen()
    received: list[str] = []
    srv.command_received.connect(received.append)
    srv.received = received
    yield srv
    srv.close()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def connect(name: str) -> socket.socket:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(10)
    client.connect(name)
    return client


def in_thread(target) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def wait_threads(qtbot, threads: list[threading.Thread], timeout_ms: int = 15000) -> None:
    qtbot.waitUntil(lambda: not any(t.is_alive() for t in threads), timeout=timeout_ms)


def still_works(qtbot, server: InstanceServer) -> None:
    before = len(server.received)
    with qtbot.waitSignal(server.command_received, timeout=5000):
        assert send_command("show", server.server_name)
    assert server.received[before:] == ["show"]


def test_a_huge_message_is_cut_off_without_stalling_the_loop(server, qtbot):
    outcome = {}

    def flood():
        client = connect(server.server_name)
        sent = 0
        block = b"IM2LATEX/1 " + b"s" * (1 << 20)
        try:
            while sent < 64 * (1 << 20):
                sent += client.send(block)
        except OSError as error:   # the server hung up: exactly what should happen
            outcome["error"] = type(error).__name__
        outcome["sent"] = sent
        client.close()

    watch = LoopWatch()
    wait_threads(qtbot, [in_thread(flood)])
    assert watch.stop() < 1000
    assert "error" in outcome and outcome["sent"] < 64 * (1 << 20)
    assert server.received == []
    still_works(qtbot, server)


def test_a_flood_of_silent_connections_is_cut_off_and_leaks_nothing(server, qtbot):
    qtbot.wait(50)
    baseline = open_fds()
    clients: list[socket.socket] = []
    closed: list[bool] = []

    def flood():  # 200 connections that never say a word, opened while the loop runs
        for _ in range(200):
            for _attempt in range(200):
                try:
                    clients.append(connect(server.server_name))
                    break
                except BlockingIOError:   # the listen backlog is full: the server is behind
                    time.sleep(0.01)
        for client in clients:
            client.settimeout(5)
            try:
                closed.append(client.recv(10) == b"")
            except TimeoutError:       # still open: the server forgot it
                closed.append(False)
            except ConnectionResetError:
                closed.append(True)
            client.close()

    watch = LoopWatch()
    wait_threads(qtbot, [in_thread(flood)], timeout_ms=30000)
    assert len(clients) == 200 and all(closed) and len(closed) == 200   # every one cut off by the server
    assert watch.stop() < 1000
    qtbot.waitUntil(lambda: not server._clients, timeout=3000)
    qtbot.wait(100)    # deleteLater runs
    assert open_fds() <= baseline + 2
    still_works(qtbot, server)


def test_a_trickling_client_is_cut_off_by_the_total_time_not_reset_by_each_byte(server, qtbot):
    result = {}

    def trickle():
        client = connect(server.server_name)
        start = time.monotonic()
        try:
            for byte in b"IM2LATEX/1 " * 10:
                client.send(bytes([byte]))
                time.sleep(0.05)
        except OSError:
            pass
        client.settimeout(3)
        try:
            result["eof"] = client.recv(10) == b""
        except TimeoutError:
            result["eof"] = False
        except ConnectionResetError:
            result["eof"] = True
        result["seconds"] = time.monotonic() - start
        client.close()

    wait_threads(qtbot, [in_thread(trickle)])
    assert result["eof"] and result["seconds"] < 3.0
    assert server.received == []


@pytest.mark.parametrize("payload, expected", [
    (encode("snip") + encode("show"), ["snip"]),                # one command per connection
    (encode("snip") + os.urandom(100), ["snip"]),               # junk after the line is ignored
    (b"IM2LATEX/1 snip\x00\n", []),                             # a NUL makes it no command
    (b"\r\nIM2LATEX/1 snip\n", []),                             # nothing before the prefix
    (b"IM2LATEX/1 " + "sn\u00efp".encode() + b"\n", []),        # not ASCII
    (b"\n", []),
])
def test_odd_lines(server, qtbot, payload, expected):
    client = connect(server.server_name)
    client.sendall(payload)
    qtbot.wait(300)
    client.close()
    qtbot.wait(100)
    assert server.received == expected
    still_works(qtbot, server)


def test_a_command_arrives_while_its_client_stays_connected(server, qtbot):
    client = connect(server.server_name)
    with qtbot.waitSignal(server.command_received, timeout=3000) as blocker:
        client.sendall(encode("snip"))
    assert blocker.args == ["snip"]
    client.settimeout(3)
    assert client.recv(10) == b""   # answered and closed, not held open
    client.close()


def test_clients_that_reset_the_connection(server, qtbot):
    for payload in (b"", b"IM2LATEX/1 sn", encode("snip")[:-1]):
        client = connect(server.server_name)
        if payload:
            client.sendall(payload)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()    # an RST, not a FIN
    qtbot.wait(600)
    assert server.received == [] and not server._clients
    still_works(qtbot, server)


def test_the_socket_is_owner_only_even_with_an_open_umask(qtbot, app_dirs):
    old = os.umask(0)
    try:
        srv = InstanceServer()
        assert srv.listen()
    finally:
        os.umask(old)
    try:
        mode = stat.S_IMODE(os.stat(srv.server_name).st_mode)
        assert mode & 0o077 == 0, oct(mode)
        assert stat.S_IMODE(Path(srv.server_name).parent.stat().st_mode) == 0o700
    finally:
        srv.close()


@pytest.mark.parametrize("leftover", ["regular-file", "socket-nobody-answers"])
def test_leftovers_at_the_socket_path_are_replaced(qtbot, app_dirs, leftover):
    name = single_instance.default_server_name()
    if leftover == "regular-file":
        Path(name).write_text("not a socket")
    else:
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(name)
        stale.listen(1)
        stale.close()
    srv = InstanceServer()
    try:
        assert srv.listen()
        with qtbot.waitSignal(srv.command_received, timeout=5000):
            assert send_command("snip")
    finally:
        srv.close()


def test_a_folder_at_the_socket_path_fails_cleanly(qtbot, app_dirs):
    name = single_instance.default_server_name()
    Path(name).mkdir(parents=True)
    (Path(name) / "keep").write_text("x")
    srv = InstanceServer()
    try:
        assert srv.listen() is False    # refused, not raised; the app then runs without the socket
    finally:
        srv.close()
    assert (Path(name) / "keep").exists()   # nothing of the user's was deleted


def test_a_runtime_folder_that_is_a_symlink_is_not_trusted(app_dirs, tmp_path):
    elsewhere = tmp_path / "someone-elses"
    elsewhere.mkdir(mode=0o700)
    link = app_dirs["runtime"]
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(elsewhere)
    chosen = paths.runtime_dir()
    assert chosen != link and chosen.resolve() != elsewhere.resolve()
    info = chosen.lstat()
    assert stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) == 0o700
