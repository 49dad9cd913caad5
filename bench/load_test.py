#!/usr/bin/python3
"""Bounded load run on loopback: aggregate generated tokens/s of `volga serve`
with 1 client and with N concurrent clients (greedy, fixed max_tokens).

    /usr/bin/python3 bench/load_test.py MODEL.gguf [--clients 8] [--tokens 64] [--threads 2] [--mpi N]

--mpi N runs the server as `mpirun -np N` on loopback (docs/MULTINODE.md);
--threads is then per rank.

Prints one JSON object; the figures go to docs/PERFORMANCE.md with the command."""
import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--volga", default=os.path.join(ROOT, "build", "bin", "volga"))
    ap.add_argument("--mpi", type=int, default=0, help="ranks of an mpirun job on loopback (0: one process)")
    a = ap.parse_args()
    launcher = []
    if a.mpi > 0:
        launcher = ["mpirun", "-np", str(a.mpi), "--oversubscribe", "--bind-to", "none", "--mca", "btl", "self,tcp",
                    "--mca", "btl_tcp_if_include", "lo", "--mca", "oob_tcp_if_include", "lo"]
        if os.getuid() == 0:
            launcher.append("--allow-run-as-root")

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen([*launcher, a.volga, "serve", a.model, "--port", str(port), "--parallel", str(a.clients),
                             "-c", str(a.tokens + 64), "-t", str(a.threads)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)

        def one(i, out):
            body = json.dumps({"prompt": "Client %d asks about the Volga river." % i, "max_tokens": a.tokens,
                               "temperature": 0})
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
            c.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
            r = json.loads(c.getresponse().read())
            out[i] = r["usage"]["completion_tokens"]

        def run(n):
            out = [0] * n
            threads = [threading.Thread(target=one, args=(i, out)) for i in range(n)]
            t0 = time.time()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            dt = time.time() - t0
            return sum(out), dt

        run(1)  # warm-up
        tok1, dt1 = run(1)
        tokn, dtn = run(a.clients)
        single, aggregate = tok1 / dt1, tokn / dtn
        print(json.dumps({"model": a.model, "ranks": max(1, a.mpi), "threads": a.threads, "tokens_per_request": a.tokens,
                          "single_client_tokens_per_s": round(single, 2), "clients": a.clients,
                          "aggregate_tokens_per_s": round(aggregate, 2), "speedup": round(aggregate / single, 2)}))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


if __name__ == "__main__":
    sys.exit(main())
