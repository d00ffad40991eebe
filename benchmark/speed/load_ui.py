"""Load test of the web app: N concurrent Generate requests through `gradio_client` at a local server.

Starts `blipdiff ui` on 127.0.0.1 and a free port (or uses --url, which must be on this machine), sends
N requests at once, each from its own thread, and prints completed/failed, latency percentiles and the
server's peak resident memory (VmHWM from /proc, when the script started the server).

    .venv/bin/python benchmark/speed/load_ui.py --requests 20 --model builtin:random-small --steps 10
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

LOCAL_HOSTS = ("127.0.0.1", "localhost")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def memory_kib(pid: int, field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of ``pid`` in KiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


def start_server(model: str, concurrency: int, output: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "blipdiff_plugins.cli", "ui", "--model", model, "--host", "127.0.0.1", "--port", str(port),
               "--concurrency", str(concurrency), "--output", output, "--device", "cpu"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited: {server.stderr.read()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return server, url
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise RuntimeError("the server did not answer within 300 s")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20, help="concurrent Generate requests")
    parser.add_argument("--model", default="builtin:random-small", help="model of the started server")
    parser.add_argument("--concurrency", type=int, default=1, help="the server's --concurrency")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--url", default=None, help="an already running app on this machine instead of starting one")
    args = parser.parse_args()
    if args.requests < 1:
        parser.error(f"--requests must be at least 1, got {args.requests}")
    if args.url and urllib.parse.urlparse(args.url).hostname not in LOCAL_HOSTS:
        parser.error(f"--url must point at this machine ({', '.join(LOCAL_HOSTS)}), got {args.url!r}")

    from gradio_client import Client, handle_file
    import numpy as np
    import PIL.Image

    server = None
    with tempfile.TemporaryDirectory() as workdir:
        subject = Path(workdir) / "subject.png"
        PIL.Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(subject)
        if args.url:
            url = args.url
        else:
            server, url = start_server(args.model, args.concurrency, str(Path(workdir) / "output"))
            rss_idle = memory_kib(server.pid, "VmRSS")
        warm = Client(url, verbose=False)
        # images, subject, target, subject model, prompts, negative, steps, guidance, seed, height, width (0: the model's),
        # images per prompt, scheduler, method; the method settings keep their defaults
        request = [[handle_file(str(subject))], "dog", "", "(none)", "on a beach", "", args.steps, 7.5, 0, 0, 0, 1, "default", "BLIP-Diffusion"]
        warm.predict(*request, api_name="/generate")  # first call pays the one-time costs
        if server is not None:
            rss_warm = memory_kib(server.pid, "VmRSS")

        latencies, failures, lock = [], [], threading.Lock()
        start_gate = threading.Barrier(args.requests)

        def one(index: int) -> None:
            client = Client(url, verbose=False)
            seeded = list(request)
            seeded[8] = index  # the seed
            start_gate.wait()
            started = time.perf_counter()
            try:
                client.predict(*seeded, api_name="/generate")
                with lock:
                    latencies.append(time.perf_counter() - started)
            except Exception as error:  # noqa: BLE001 - counted and reported
                with lock:
                    failures.append(f"{type(error).__name__}: {error}")

        began = time.perf_counter()
        with ThreadPoolExecutor(args.requests) as pool:
            list(pool.map(one, range(args.requests)))
        wall = time.perf_counter() - began

        print(f"url {url}  model {args.model}  steps {args.steps}  server concurrency {args.concurrency}")
        print(f"requests {args.requests}: completed {len(latencies)}, failed {len(failures)}")
        for message in failures[:5]:
            print(f"  failure: {message[:200]}")
        if latencies:
            print(f"latency s: p50 {percentile(latencies, 0.5):.2f}  p95 {percentile(latencies, 0.95):.2f}  "
                  f"min {min(latencies):.2f}  max {max(latencies):.2f}  mean {statistics.mean(latencies):.2f}")
            print(f"wall {wall:.1f} s, {len(latencies) / wall:.2f} requests/s")
        if server is not None:
            peak = memory_kib(server.pid, "VmHWM")
            print(f"server RSS MiB: idle {rss_idle / 1024:.0f}, after one request {rss_warm / 1024:.0f}, "
                  f"now {memory_kib(server.pid, 'VmRSS') / 1024:.0f}, peak {peak / 1024:.0f}")
            server.terminate()
            server.wait(timeout=30)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
