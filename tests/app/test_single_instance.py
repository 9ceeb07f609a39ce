"""Single instance: commands reach the running app; junk, silence and stale sockets do no harm."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from im2latex_desktop import paths, single_instance
from im2latex_desktop.single_instance import InstanceServer, decode, default_server_name, encode, send_command

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(qtbot):
    srv = InstanceServer()
    assert srv.listen()
    yield srv
    srv.close()


def raw_client(name: str) -> socket.socket:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(name)
    return client


def test_protocol():
    assert decode(encode("snip")) == "snip"
    for junk in (b"", b"snip", b"IM2LATEX/1 rm -rf", b"IM2LATEX/1 \xff\xfe", b"IM2LATEX/2 snip"):
        assert decode(junk) is None


def test_socket_is_private_to_the_user(server, app_dirs):
    path = Path(server.server_name)
    assert path.parent == paths.runtime_dir() == app_dirs["runtime"]
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_ISSOCK(path.stat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def test_runtime_dir_open_to_others_is_closed(app_dirs):
    folder = app_dirs["runtime"]
    folder.mkdir(parents=True)
    os.chmod(folder, 0o777)
    assert paths.runtime_dir() == folder
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_commands_arrive(server, qtbot):
    with qtbot.waitSignal(server.command_received, timeout=5000) as blocker:
        assert send_command("snip")
    assert blocker.args == ["snip"]
    with qtbot.waitSignal(server.command_received, timeout=5000) as blocker:
        assert send_command("show")
    assert blocker.args == ["show"]


def test_garbage_partial_overlong_and_silent_clients_are_dropped(server, qtbot, monkeypatch):
    monkeypatch.setattr(single_instance, "CLIENT_TIMEOUT_MS", 300)
    received = []
    server.command_received.connect(received.append)
    clients = []
    for payload in (b"\x00\xff garbage\n", b"IM2LATEX/1 sni", b"IM2LATEX/1 snip" + b"p" * 200 + b"\n", b""):
        client = raw_client(server.server_name)
        client.sendall(payload) if payload else None
        clients.append(client)
    clients[1].close()  # partial message, then gone
    qtbot.wait(700)     # the silent client is cut off after the timeout
    assert received == []
    silent = clients[3]
    silent.settimeout(2)
    assert silent.recv(10) == b""   # the server closed it
    for client in clients:
        client.close()
    with qtbot.waitSignal(server.command_received, timeout=5000):   # and still works
        assert send_command("snip")
    assert received == ["snip"]


def test_stale_socket_from_a_crash_is_replaced(qtbot, app_dirs):
    name = default_server_name()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(name)
    stale.close()                    # the file stays, nobody listens: like after a crash
    assert Path(name).exists()
    assert not send_command("snip", timeout_ms=300)
    srv = InstanceServer()
    assert srv.listen()
    with qtbot.waitSignal(srv.command_received, timeout=5000):
        assert send_command("snip")
    srv.close()


def test_a_live_instance_is_never_replaced(server):
    second = InstanceServer()
    assert not second.listen()
    assert server.listening


def test_second_start_with_snip_hands_over_and_exits(server, qtbot, app_dirs):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    with qtbot.waitSignal(server.command_received, timeout=20000) as blocker:
        process = subprocess.Popen([sys.executable, "-m", "im2latex_desktop", "--snip"], cwd=REPO, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = process.communicate(timeout=20)
    assert blocker.args == ["snip"]
    assert process.returncode == 0, err
    assert "already running" in out
