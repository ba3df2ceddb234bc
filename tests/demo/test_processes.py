"""The demo's server processes: own process groups, and a stop that leaves nothing behind, also
a process that ignores SIGTERM and a grandchild in a session of its own (as engines run)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from umi.demo.processes import ServerProcess, descendants, pid_alive, stop_processes

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")

# A server that starts a helper in a new session (like a role service's engine), writes its pid,
# then waits; with IGNORE_TERM it ignores SIGTERM.
SERVER = """
import os, signal, subprocess, sys, time
if sys.argv[2] == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
helper = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"],
                          start_new_session=True)
open(sys.argv[1], "w").write(str(helper.pid))
time.sleep(300)
"""


def start(tmp_path: Path, name: str, mode: str) -> tuple[ServerProcess, int]:
    pid_file = tmp_path / f"{name}.pid"
    server = ServerProcess(name, [sys.executable, "-c", SERVER, str(pid_file), mode], {}, tmp_path / f"{name}.log")
    server.start()
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.monotonic() < deadline, server.log_tail()
        time.sleep(0.05)
    return server, int(pid_file.read_text())


def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    polite, polite_helper = start(tmp_path, "polite", "obey-term")
    stubborn, stubborn_helper = start(tmp_path, "stubborn", "ignore-term")
    try:
        assert {polite_helper, stubborn_helper} <= descendants([polite.pid, stubborn.pid])  # type: ignore[list-item]
        assert polite.running and stubborn.running

        leftover = stop_processes([polite, stubborn], grace_s=1.0)

        assert leftover == []
        assert not polite.running and not stubborn.running
        for pid in (polite.pid, stubborn.pid, polite_helper, stubborn_helper):
            assert not pid_alive(pid)  # type: ignore[arg-type]
    finally:
        stop_processes([polite, stubborn], grace_s=0.1)


def test_a_server_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    server = ServerProcess("short", [sys.executable, "-c", "print('bad settings'); raise SystemExit(2)"], {}, tmp_path / "s.log")
    server.start()
    assert server.wait(30)
    assert server.returncode == 2 and not server.running
    assert "bad settings" in server.log_tail()
    assert stop_processes([server], grace_s=0.1) == []
