#!/usr/bin/env python3
"""Runs a command and prints its peak resident memory as JSON (standard library only).

    python3 peak_rss.py [--json FILE] -- COMMAND [ARG...]

The command's stdout is discarded (it may be large); its stderr is kept. Peak RSS comes
from ``wait4`` (``ru_maxrss``) for that one child process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="FILE", help="also write the result here")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        parser.error("no command given")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    result = {
        "command": cmd,
        "exit_code": proc.returncode,
        "seconds": elapsed,
        "peak_rss_bytes": usage.ru_maxrss * scale,
    }
    text = json.dumps(result)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
