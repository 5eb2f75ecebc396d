"""A loopback TCP proxy that can stop forwarding, as a network cut does, for end-to-end tests."""

from __future__ import annotations

import socket
import struct
import threading
import time
from contextlib import suppress

_RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # linger on, 0 s: close sends RST


class CutProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target``; ``cut`` stalls every connection.

    While cut, bytes are neither read nor forwarded in either direction (the peers see a
    silent network). When the cut ends, the connections open during it are reset, as a
    router dropping its state would, or carry on; new connections are forwarded again.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cut(self, seconds: float, *, reset: bool = True) -> None:
        """Stall all traffic for ``seconds`` (blocking), then reset the stalled connections
        (``reset=False``: let them carry on, as a link that heals does)."""
        self._flowing.clear()
        time.sleep(seconds)
        if not reset:
            self._flowing.set()
            return
        with self._lock:
            stalled, self._conns = self._conns, []
        for sock in stalled:
            with suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
                sock.close()
        self._flowing.set()

    def close(self) -> None:
        self._closed = True
        with suppress(OSError):
            self._listener.close()
        with self._lock:
            for sock in self._conns:
                with suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._flowing.wait()
            try:
                upstream = socket.create_connection(self._target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                self._flowing.wait()
                data = src.recv(65536)
                if not data:
                    break
                self._flowing.wait()  # a chunk read just before the cut waits it out
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
