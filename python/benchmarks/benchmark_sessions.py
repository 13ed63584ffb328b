"""Live-session load test: remotemedia against Pipecat, same machine, same run.

    python benchmark_sessions.py --cli target/release/remotemedia \
        [--pipecat-python target/bench/pipecat-venv/bin/python] \
        [--sessions 1,10,25,50,100,200,400] [--quick] [--json FILE] [--markdown FILE]

The work, on both: N concurrent real-time sessions, each streaming a 12 s speech file
(three sentences with silences; espeak-ng, 16 kHz mono, 20 ms s16le frames, or the
same at 48 kHz resampled to 16 kHz by the server), through Silero VAD (threshold 0.5,
min speech 250 ms, min silence 300 ms), speech start/end events back as soon as they
are decided. One load generator drives both: `remotemedia connect --sessions N
--realtime --ramp 2` (sessions start spread over 2 s), speaking each server's framing
(`--protocol pipecat` for Pipecat's protobuf frames).

Latency of an event: from sending the input frame that decided it (the event's
`decided_at_us`: the stream time up to which the VAD had read when it decided) to
receiving the event; the VAD's own wait (min speech / min silence) is not in it, on
either side. Per N: p50/p99/max latency, sessions failed, frames the generator sent
more than 50 ms late, server CPU (user+system of the server's processes over the run,
in cores), server RSS per session (peak minus idle, over N). A level "passes" with p99
<= 50 ms, no failed session and no late frame; the ladder of a server stops after its
first failing level.

Pipecat (`pipecat-ai==1.14.0`, BSD-2-Clause) is installed by scripts/bench.sh into its
own venv from PyPI; its server is `pipecat_vad_server.py` beside this file.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

SENTENCES = [
    ("Good morning, I would like to book a table for two.", 0.6, 1.2),
    ("Tomorrow evening at seven, if you have one.", 0.0, 1.4),
    ("Thank you very much, goodbye.", 0.0, 1.5),
]

VAD16 = """version: v1
metadata: {name: vad16}
nodes:
  - {id: vad, node_type: VoiceActivity, params: {output: events, min_speech_ms: 250, min_silence_ms: 300}}
"""

VAD48 = """version: v1
metadata: {name: vad48}
nodes:
  - {id: resample, node_type: AudioResample, params: {target_rate: 16000}}
  - {id: vad, node_type: VoiceActivity, params: {output: events, min_speech_ms: 250, min_silence_ms: 300}}
connections:
  - {from: resample, to: vad}
"""


def make_speech(d: Path) -> dict:
    parts = []
    for i, (text, before, after) in enumerate(SENTENCES):
        raw = d / f"s{i}.wav"
        padded = d / f"p{i}.wav"
        subprocess.run(["espeak-ng", "-w", str(raw), text], check=True)
        subprocess.run(["sox", str(raw), str(padded), "pad", str(before), str(after)], check=True)
        parts.append(str(padded))
    out = {}
    for rate in (16000, 48000):
        f = d / f"speech{rate // 1000}.wav"
        subprocess.run(["sox", *parts, "-r", str(rate), "-b", "16", "-c", "1", str(f)], check=True)
        out[rate] = f
    return out


def tree_pids(pid: int) -> list:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except OSError:
            pass
    return pids


def cpu_seconds(pid: int) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return total


def rss_kb(pid: int) -> int:
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


class Server:
    """A server process; `url` is where sessions go."""

    def __init__(self, args, ready, url_of, env=None):
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                     start_new_session=True)
        self.url = url_of(self.proc, ready)

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def start_remotemedia(cli: str, pipelines: Path) -> Server:
    def url_of(proc, _):
        line = proc.stdout.readline()
        if not line.startswith("listening on "):
            raise SystemExit(f"remotemedia serve did not start: {line!r} {proc.stderr.read()[-2000:]}")
        return line.split()[-1]

    return Server([cli, "serve", "--listen", "127.0.0.1:0", "--pipelines", str(pipelines), "--max-sessions", "4096",
                   "--max-connections", "8192"], None, url_of)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_pipecat(python: str, rate: int) -> Server:
    port = free_port()

    def url_of(proc, _):
        import socket

        deadline = time.time() + 60
        while time.time() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"the Pipecat server exited: {proc.stderr.read()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return f"ws://127.0.0.1:{port}"
            except OSError:
                time.sleep(0.2)
        raise SystemExit("the Pipecat server did not listen within 60 s")

    return Server([python, str(HERE / "pipecat_vad_server.py"), "--port", str(port), "--sample-rate", str(rate)], None,
                  url_of)


def level(cli: str, server: Server, protocol: str, pipeline: str, wav: Path, n: int) -> dict:
    idle_rss = rss_kb(server.proc.pid)
    cpu0, t0 = cpu_seconds(server.proc.pid), time.monotonic()
    peak = [idle_rss]
    done = threading.Event()

    def sample():
        while not done.wait(0.2):
            peak[0] = max(peak[0], rss_kb(server.proc.pid))

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out = subprocess.run([cli, "connect", server.url, "--pipeline", pipeline, "--protocol", protocol, "--input",
                          str(wav), "--realtime", "--sessions", str(n), "--ramp", "2"],
                         capture_output=True, text=True, timeout=600)
    done.set()
    th.join()
    wall = time.monotonic() - t0
    cpu = cpu_seconds(server.proc.pid) - cpu0
    try:
        report = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        report = {"failed": n, "errors": [out.stderr[-500:]], "latency_ms": {}}
    lat = report.get("latency_ms", {})
    row = {
        "sessions": n,
        "p50_ms": lat.get("p50"),
        "p99_ms": lat.get("p99"),
        "max_ms": lat.get("max"),
        "events": lat.get("count", 0),
        "failed": report.get("failed", n),
        "late_frames": report.get("frames_late", 0),
        "cpu_cores": round(cpu / wall, 2),
        "rss_per_session_kb": round(max(0, peak[0] - idle_rss) / n, 1),
        "errors": report.get("errors", [])[:2] or ([out.stderr.strip()[-300:]] if out.returncode else []),
    }
    row["pass"] = bool(row["p99_ms"] is not None and row["p99_ms"] <= 50 and row["failed"] == 0
                       and row["late_frames"] == 0 and row["events"] >= 6 * n)
    return row


def ladder(name, cli, start, protocol, pipeline, wav, counts) -> dict:
    rows = []
    server = start()
    try:
        for n in counts:
            row = level(cli, server, protocol, pipeline, wav, n)
            rows.append(row)
            print(f"  {name:28} N={n:4}  p50 {row['p50_ms']} ms  p99 {row['p99_ms']} ms  failed {row['failed']}  "
                  f"late {row['late_frames']}  cpu {row['cpu_cores']}  rss/session {row['rss_per_session_kb']} kB"
                  f"  {'ok' if row['pass'] else 'FAIL'}", flush=True)
            if not row["pass"]:
                break
    finally:
        server.stop()
    best = max([r["sessions"] for r in rows if r["pass"]], default=0)
    return {"name": name, "rows": rows, "max_sessions": best}


def markdown(results: dict) -> str:
    lines = ["| server | input | sessions | p50 ms | p99 ms | max ms | failed | late frames | server CPU (cores) "
             "| RSS / session | pass |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results["ladders"]:
        for row in r["rows"]:
            lines.append(f"| {r['name'].split(' ')[0]} | {r['input']} | {row['sessions']} | {row['p50_ms']} | "
                         f"{row['p99_ms']} | {row['max_ms']} | {row['failed']} | {row['late_frames']} | "
                         f"{row['cpu_cores']} | {row['rss_per_session_kb']} kB | {'yes' if row['pass'] else 'no'} |")
    lines.append("")
    for r in results["ladders"]:
        lines.append(f"- {r['name']}: largest N passing (p99 <= 50 ms, nothing failed or late): **{r['max_sessions']}**")
    by = {r["name"]: r for r in results["ladders"]}
    for rate in ("16 kHz", "48 kHz (resample)"):
        ours, theirs = by.get(f"remotemedia {rate}"), by.get(f"pipecat {rate}")
        if not (ours and theirs):
            continue
        ratio = results.get(f"ratio {rate}")
        lines.append(f"- {rate}: remotemedia sustains **{ratio}x** the sessions Pipecat does (target >= 5x)"
                     if ratio else f"- {rate}: Pipecat passed no level")
        theirs_rows = {row["sessions"]: row for row in theirs["rows"]}
        for row in ours["rows"]:
            other = theirs_rows.get(row["sessions"])
            if other and row["p99_ms"] is not None and other["p99_ms"] is not None:
                lines.append(f"  - N={row['sessions']}: p99 {row['p99_ms']} ms vs Pipecat {other['p99_ms']} ms")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cli", default=str(REPO / "target" / "release" / "remotemedia"))
    ap.add_argument("--pipecat-python", help="a Python with pipecat-ai installed (omit: remotemedia only)")
    ap.add_argument("--sessions", default="1,10,25,50,100,200,400,800")
    ap.add_argument("--quick", action="store_true", help="levels 1, 10 and 50 only")
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    ap.add_argument("--report", help="rewrite --markdown from this --json of an earlier run, measuring nothing")
    args = ap.parse_args()
    if args.report:
        results = json.loads(Path(args.report).read_text())
        Path(args.markdown).write_text(markdown(results))
        return 0
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed to make the speech file")
    counts = [1, 10, 50] if args.quick else [int(x) for x in args.sessions.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        wavs = make_speech(d)
        pl = d / "pipelines"
        pl.mkdir()
        (pl / "vad16.yaml").write_text(VAD16)
        (pl / "vad48.yaml").write_text(VAD48)
        ladders = []
        plan = [("remotemedia 16 kHz", 16000, lambda: start_remotemedia(args.cli, pl), "remotemedia", "vad16")]
        if args.pipecat_python:
            plan.append(("pipecat 16 kHz", 16000, lambda: start_pipecat(args.pipecat_python, 16000), "pipecat", "vad"))
        plan.append(("remotemedia 48 kHz (resample)", 48000, lambda: start_remotemedia(args.cli, pl), "remotemedia",
                     "vad48"))
        if args.pipecat_python:
            plan.append(("pipecat 48 kHz (resample)", 48000, lambda: start_pipecat(args.pipecat_python, 48000),
                         "pipecat", "vad"))
        for name, rate, start, protocol, pipeline in plan:
            r = ladder(name, args.cli, start, protocol, pipeline, wavs[rate], counts)
            r["input"] = f"{rate // 1000} kHz"
            ladders.append(r)
    results = {"ladders": ladders, "machine": {"cpus": os.cpu_count()}}
    by = {r["name"]: r["max_sessions"] for r in ladders}
    for rate in ("16 kHz", "48 kHz (resample)"):
        ours, theirs = by.get(f"remotemedia {rate}"), by.get(f"pipecat {rate}")
        if ours is not None and theirs:
            results[f"ratio {rate}"] = round(ours / theirs, 2)
    print(json.dumps({k: v for k, v in results.items() if k != "ladders"}))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if args.markdown:
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        Path(args.markdown).write_text(f"Measured {stamp} on this machine ({os.cpu_count()} cores shared by "
                                       "the servers and the load generator).\n\n" + markdown(results))


if __name__ == "__main__":
    sys.exit(main())
