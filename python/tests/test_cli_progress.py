"""`remotemedia run` shows a progress bar on stderr only when stderr is a terminal."""

import os
import pty
import select
import subprocess
import time

import pytest
from _util import REPO, cli

MANIFEST = str(REPO / "examples" / "calculator.yaml")


def _require_cli():
    path = cli()
    if path is None:
        pytest.skip("the remotemedia CLI is not built (cargo build -p remotemedia-cli, or set REMOTEMEDIA_CLI)")
    return path


def _feed_slowly(proc, count=6, pause=0.1):
    """Writes items over about half a second so the bar gets to draw."""
    for i in range(count):
        proc.stdin.write(f"{i}\n".encode())
        proc.stdin.flush()
        time.sleep(pause)
    proc.stdin.close()


def _run_with_pty_stderr(extra_args):
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [_require_cli(), "run", MANIFEST, "--input", "-", *extra_args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    _feed_slowly(proc)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 10)
        if not ready:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    stdout = proc.stdout.read()
    assert proc.wait(timeout=30) == 0, seen.decode(errors="replace")
    os.close(master)
    return stdout.decode(), seen.decode(errors="replace")


def test_progress_bar_on_a_terminal():
    stdout, stderr = _run_with_pty_stderr([])
    assert stdout.split() == [str(i + 1) for i in range(6)]
    assert "items out" in stderr


def test_no_progress_bar_when_asked():
    stdout, stderr = _run_with_pty_stderr(["--no-progress"])
    assert stdout.split() == [str(i + 1) for i in range(6)]
    assert "items out" not in stderr


def test_no_progress_bar_when_stderr_is_not_a_terminal():
    proc = subprocess.Popen(
        [_require_cli(), "run", MANIFEST, "--input", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _feed_slowly(proc)
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    assert proc.wait(timeout=30) == 0
    assert stdout.decode().split() == [str(i + 1) for i in range(6)]
    assert stderr.decode() == ""
