"""What the benchmarks that run helper processes share: a bench script run again in a child
process on a free loopback port (the peer, the Relais API, a worker), waited for until it
listens, its CPU time read from /proc, and stopped.

The caller puts the repository root on sys.path first, as every bench script does.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from connectors.sandbox.server import free_port

ROOT = Path(__file__).resolve().parent.parent


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


class Child:
    """`script` run again in a child process with `args` and `--port <a free port>`; ready once
    something listens on that port."""

    def __init__(self, script: str, *args: str):
        self.port = free_port()
        self.process = subprocess.Popen([sys.executable, script, *args, "--port", str(self.port)],
                                        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        self.url = f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """utime + stime of the process so far (all its threads)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
