"""One running app per user: a second start hands its command (snip, show) to the first and exits.

The channel is a QLocalServer socket in the user's private runtime folder (mode 0700, the socket
itself owner-only), so other users can neither send commands nor squat the name.  The server is
defensive: a message is one short ASCII line ``IM2LATEX/1 <command>\\n``; anything longer,
unknown, undecodable or unfinished is dropped, and a client that stays silent is cut off after a
timeout, so nothing a client sends can crash or hang the app.  A socket file left by a crashed
instance (nobody answers) is removed and replaced.
"""

from __future__ import annotations

import getpass
import logging
import sys
import time

from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from im2latex_desktop import paths

log = logging.getLogger(__name__)

PREFIX = b"IM2LATEX/1 "
COMMANDS = ("snip", "show")
MAX_MESSAGE = 64
CLIENT_TIMEOUT_MS = 2000


def default_server_name() -> str:
    """A socket path in the private runtime folder (a per-user pipe name on Windows)."""
    if sys.platform == "win32":
        try:
            user = getpass.getuser()
        except Exception:
            user = "user"
        return f"{paths.APP_NAME}-{user}"
    return str(paths.runtime_dir() / "instance.sock")


def encode(command: str) -> bytes:
    return PREFIX + command.encode("ascii") + b"\n"


def decode(message: bytes) -> str | None:
    """The command in one received line, or ``None`` for anything that is not a valid message."""
    if not message.startswith(PREFIX):
        return None
    try:
        command = message[len(PREFIX):].decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    return command if command in COMMANDS else None


def send_command(command: str, server_name: str | None = None, timeout_ms: int = 1000) -> bool:
    """Deliver ``command`` to a running instance; ``False`` when none answers (start one then)."""
    socket = QLocalSocket()
    socket.connectToServer(server_name or default_server_name())
    if not socket.waitForConnected(timeout_ms):
        return False
    socket.write(encode(command))
    socket.flush()
    socket.waitForBytesWritten(timeout_ms)
    socket.disconnectFromServer()
    if socket.state() != QLocalSocket.LocalSocketState.UnconnectedState:
        socket.waitForDisconnected(timeout_ms)
    return True


class InstanceServer(QObject):
    """Listens for commands from later starts; emits ``command_received`` on the UI thread."""

    command_received = Signal(str)

    def __init__(self, server_name: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.server_name = server_name or default_server_name()
        self._server = QLocalServer(self)
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self._server.newConnection.connect(self._on_new_connection)
        self._clients: dict[QLocalSocket, tuple[bytearray, float]] = {}
        self._sweeper = QTimer(self)       # cuts off clients that stay silent too long
        self._sweeper.setInterval(100)
        self._sweeper.timeout.connect(self._sweep)

    def listen(self) -> bool:
        """Start listening, replacing a stale socket left by a crash.  ``False`` if impossible.

        Only a failed connection proves a socket file stale, so a socket somebody answers on is
        never replaced (Qt would otherwise rename its new socket over the live one).
        """
        probe = QLocalSocket()
        probe.connectToServer(self.server_name)
        if probe.waitForConnected(300):
            probe.abort()
            log.warning("another instance answers on %s", self.server_name)
            return False
        QLocalServer.removeServer(self.server_name)
        if self._server.listen(self.server_name):
            return True
        log.warning("cannot listen on %s: %s", self.server_name, self._server.errorString())
        return False

    def close(self) -> None:
        for socket in list(self._clients):
            self._drop(socket)
        self._sweeper.stop()
        self._server.close()

    @property
    def listening(self) -> bool:
        return self._server.isListening()

    @Slot()
    def _on_new_connection(self) -> None:
        while self._server.hasPendingConnections():
            socket = self._server.nextPendingConnection()
            self._clients[socket] = (bytearray(), time.monotonic())
            socket.readyRead.connect(self._on_ready_read)
            socket.disconnected.connect(self._on_disconnected)
            if socket.bytesAvailable():
                self._read(socket)
        if self._clients and not self._sweeper.isActive():
            self._sweeper.start()

    @Slot()
    def _on_ready_read(self) -> None:
        socket = self.sender()
        if isinstance(socket, QLocalSocket):
            self._read(socket)

    @Slot()
    def _on_disconnected(self) -> None:
        socket = self.sender()
        if isinstance(socket, QLocalSocket):
            self._drop(socket)

    def _read(self, socket: QLocalSocket) -> None:
        client = self._clients.get(socket)
        if client is None:
            return
        buffer = client[0]
        buffer += bytes(socket.read(MAX_MESSAGE + 1 - len(buffer)).data())
        newline = buffer.find(b"\n")
        if newline >= 0:
            command = decode(bytes(buffer[:newline]))
            if command is None:
                log.info("ignored a malformed instance message (%d bytes)", newline)
            self._drop(socket)
            if command is not None:
                self.command_received.emit(command)
        elif len(buffer) > MAX_MESSAGE:
            log.info("ignored an overlong instance message")
            self._drop(socket)

    def _sweep(self) -> None:
        limit = time.monotonic() - CLIENT_TIMEOUT_MS / 1000
        for socket, (_, started) in list(self._clients.items()):
            if started < limit:
                log.info("cut off a silent instance client")
                self._drop(socket)
        if not self._clients:
            self._sweeper.stop()

    def _drop(self, socket: QLocalSocket) -> None:
        if self._clients.pop(socket, None) is None:
            return
        socket.readyRead.disconnect(self._on_ready_read)
        socket.disconnected.disconnect(self._on_disconnected)
        socket.abort()
        socket.deleteLater()
