"""Pipeline parallelism over Open MPI (docs/MULTINODE.md), on loopback:
`mpirun -np 2|3 volga run|bench|serve` must give exactly the tokens of one
process on dense, deepseek2 (MLA) and qwen3moe synthetic models, for every
split; bad splits and a killed rank end the job with a message, never a hang.
The oracle is the single-process `volga run` (itself held to the NumPy
reference by test_reference) and, for serving, the official `openai` client.

Skips with a visible SKIPPED message (exit 77 under ctest) when mpirun is
absent or volga was built without MPI. Run through ctest (VOLGA_BIN,
VOLGA_SYNTH, VOLGA_ROOT) with Debian's /usr/bin/python3."""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

ROOT = os.environ.get("VOLGA_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
VOLGA = os.environ.get("VOLGA_BIN", os.path.join(ROOT, "build", "bin", "volga"))
SYNTH = os.environ.get("VOLGA_SYNTH", os.path.join(ROOT, "build", "bin", "volga-synth"))
CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "openai_client.mjs")
TMP = tempfile.mkdtemp(prefix="volga-mpi-")
MPIRUN = shutil.which("mpirun")
PROMPT = "The weather is good today. Москва стоит на берегу реки. 今天天气很好"
TIMEOUT = 240


def mpirun_args(n):
    args = [MPIRUN, "-np", str(n), "--oversubscribe", "--bind-to", "none",
            "--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", "lo", "--mca", "oob_tcp_if_include", "lo"]
    if os.getuid() == 0:
        args.append("--allow-run-as-root")
    return args


def run(args, check=True, timeout=TIMEOUT):
    p = subprocess.run(args, capture_output=True, timeout=timeout)
    p.stdout = p.stdout.decode("utf-8", "replace")
    p.stderr = p.stderr.decode("utf-8", "replace")
    if check and p.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr[-3000:]))
    return p


def synth(name, *args):
    path = os.path.join(TMP, name + ".gguf")
    if not os.path.exists(path):
        run([SYNTH, "-q", "-o", path, *args])
    return path


MODELS = {  # five layers each, so three ranks can split them several ways
    "llama": ("--arch", "llama", "--n-layer", "5", "--tied", "0", "--llama3-rope"),
    "qwen2": ("--arch", "qwen2", "--n-layer", "5", "--type", "q8_0"),
    "deepseek2": ("--arch", "deepseek2", "--n-layer", "5", "--n-dense-lead", "1"),
    "qwen3moe": ("--arch", "qwen3moe", "--n-layer", "5", "--type", "q4_k"),
}


def generate(prefix, path, *extra, prompt=PROMPT, n=24, ignore_eos=True):
    out = run([*prefix, VOLGA, "run", path, "-p", prompt, "-n", str(n), "--json", "-t", "1", *extra,
               *(["--ignore-eos"] if ignore_eos else [])])
    return json.loads(out.stdout.strip().splitlines()[-1])


def skip_reason():
    """Why these tests cannot run here, or None."""
    if MPIRUN is None:
        return "mpirun is not installed (Debian: openmpi-bin)"
    built = subprocess.run([VOLGA, "run", "--mpi", "-p", "x", "-n", "0", synth("llama", *MODELS["llama"])],
                           capture_output=True, text=True, timeout=TIMEOUT)
    if "built without MPI" in built.stderr:
        return "this volga was built without MPI (VOLGA_MPI=OFF or no libopenmpi-dev)"
    return None


def setUpModule():
    reason = skip_reason()
    if reason:
        print("SKIPPED: " + reason, file=sys.stderr)
        raise unittest.SkipTest(reason)


class PipelineExactness(unittest.TestCase):
    """Tokens of a split model equal the single-process tokens, greedy and sampled."""

    SPLITS = [(2, None), (3, None), (2, "4,1"), (3, "1,3,1"), (3, "2,1,2")]

    def check_arch(self, arch):
        path = synth(arch, *MODELS[arch])
        for sampling in (["--temperature", "0"], ["--temperature", "1.0", "--top-k", "0", "--top-p", "1", "--min-p", "0",
                                                   "--seed", "7"]):
            alone = generate([], path, *sampling)
            self.assertEqual(len(alone["ids"]), 24)
            for n, split in self.SPLITS:
                if sampling[1] != "0" and split is not None:
                    continue  # sampled runs: the default splits are enough
                extra = ["--layer-split", split] if split else []
                got = generate(mpirun_args(n), path, *sampling, *extra)
                self.assertEqual(got["prompt_ids"], alone["prompt_ids"])
                self.assertEqual(got["ids"], alone["ids"], "%s, %d ranks, split %s, %s" % (arch, n, split, sampling))

    def test_llama(self):
        self.check_arch("llama")

    def test_qwen2(self):
        self.check_arch("qwen2")

    def test_deepseek2(self):
        self.check_arch("deepseek2")

    def test_qwen3moe(self):
        self.check_arch("qwen3moe")

    def test_hidden_states_in_sixteen_bits_halve_the_bytes(self):
        # --mpi-hidden f32 (the default) stays exact; bf16 runs and sends half the bytes per hop.
        path = synth("llama", *MODELS["llama"])
        alone = generate([], path, "--temperature", "0")
        traffic = {}
        for hidden in ("f32", "bf16"):
            out = run([*mpirun_args(2), VOLGA, "run", path, "-p", PROMPT, "-n", "24", "--json", "-t", "1",
                       "--ignore-eos", "--temperature", "0", "--mpi-hidden", hidden])
            got = json.loads(out.stdout.strip().splitlines()[-1])
            self.assertEqual(len(got["ids"]), 24)
            if hidden == "f32":
                self.assertEqual(got["ids"], alone["ids"])
            m = re.search(r"pipeline traffic: (\d+) tokens, ([\d.]+) hidden-state bytes per token per hop \((\w+)\)",
                          out.stderr)
            self.assertIsNotNone(m, out.stderr[-2000:])
            self.assertEqual(m.group(3), hidden)
            traffic[hidden] = float(m.group(2))
        n_embd = int(re.search(r"^embedding:\s+(\d+)", run([VOLGA, "info", path]).stdout, re.M).group(1))
        self.assertEqual(traffic["f32"], 4 * n_embd)
        self.assertEqual(traffic["bf16"], traffic["f32"] / 2)

    def test_bench_runs_split(self):
        path = synth("qwen3moe", *MODELS["qwen3moe"])
        out = run([*mpirun_args(3), VOLGA, "bench", path, "-p", "8", "-n", "4", "-r", "1", "-t", "1", "--json"])
        j = json.loads(out.stdout)
        self.assertGreater(j["decode_tokens_per_s"], 0)
        self.assertGreater(j["prefill_tokens_per_s"], 0)
        self.assertIn("pipeline over 3 MPI ranks", out.stderr)


class PipelinePlanAndErrors(unittest.TestCase):
    def test_mpi_plan_covers_every_layer_and_tensor(self):
        path = synth("deepseek2", *MODELS["deepseek2"])
        out = run([VOLGA, "info", path, "--mpi-plan", "3"]).stdout
        rows = re.findall(r"^\s*(\d+)\s+\[\s*(\d+),\s*(\d+)\)\s+(\d+)\s+([\d.]+)", out, re.M)
        self.assertEqual([int(r[0]) for r in rows], [0, 1, 2])
        self.assertEqual(int(rows[0][1]), 0)
        self.assertEqual(int(rows[-1][2]), 5)
        for a, b in zip(rows, rows[1:]):
            self.assertEqual(int(a[2]), int(b[1]))  # contiguous
        # The weights of the ranks add up to the file's tensor data (from the GGUF header, read here).
        sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))
        from gguf_np import GGUF  # noqa: E402
        total = sum(raw.size for _, _, raw in GGUF(path).tensors.values())
        self.assertAlmostEqual(sum(float(r[4]) for r in rows), total / 2**20, delta=0.1 * len(rows))
        out = run([VOLGA, "info", path, "--mpi-plan", "3", "--layer-split", "1,3,1"]).stdout
        self.assertRegex(out, r"1\s+\[\s*1,\s*4\)\s+3")

    def test_bad_split_and_unsupported_models_end_the_job(self):
        path = synth("llama", *MODELS["llama"])
        t0 = time.time()
        p = run([*mpirun_args(3), VOLGA, "run", path, "-p", "x", "-n", "2", "--layer-split", "1,1"], check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--layer-split gives 2 layer counts for 3 ranks", p.stderr)
        p = run([*mpirun_args(2), VOLGA, "run", path, "-p", "x", "-n", "2", "--layer-split", "5,0"], check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("at least one layer", p.stderr)
        hybrid = synth("qwen35", "--arch", "qwen35")
        p = run([*mpirun_args(2), VOLGA, "run", hybrid, "-p", "x", "-n", "2"], check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("cannot be split", p.stderr)
        self.assertLess(time.time() - t0, 200)
        p = run([VOLGA, "run", path, "-p", "x", "-n", "2", "--layer-split", "3,2"], check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("mpirun", p.stderr)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rank_pids(launcher_pid):
    """{rank: pid} of the volga processes mpirun started (from their environment)."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % pid, "rb") as f:
                env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if b"OMPI_COMM_WORLD_RANK" in env and VOLGA.encode() in cmd and b"serve" in cmd:
            out[int(env[b"OMPI_COMM_WORLD_RANK"])] = int(pid)
    return out


class MpiServer:
    def __init__(self, n, path, *extra, mpi_extra=()):
        self.port = free_port()
        self.proc = subprocess.Popen([*mpirun_args(n), *mpi_extra, VOLGA, "serve", path, "--port", str(self.port), "-t", "1",
                                      *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("mpirun serve ended: " + self.proc.stderr.read().decode())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as c:
                    c.sendall(b"GET /health HTTP/1.0\r\n\r\n")
                    if b" 200 " in c.recv(100):
                        return
            except OSError:
                time.sleep(0.2)
        self.proc.kill()
        raise AssertionError("the MPI server did not start")

    def client(self, jobs):
        spec = {"baseURL": "http://127.0.0.1:%d/v1" % self.port, "apiKey": "none", "jobs": jobs}
        out = subprocess.run(["node", CLIENT, json.dumps(spec)], capture_output=True, text=True, timeout=TIMEOUT,
                             cwd=ROOT)
        if out.returncode != 0:
            raise AssertionError(out.stderr)
        return json.loads(out.stdout)


class PipelineServing(unittest.TestCase):
    def test_eight_concurrent_streams_match_one_process_and_stop_cleanly(self):
        if not os.path.exists(os.path.join(ROOT, "node_modules", "openai")):
            self.skipTest("the openai npm package is missing (scripts/install-deps.sh installs it)")
        path = synth("qwen3moe", *MODELS["qwen3moe"])
        prompts = ["Prompt %d: %s" % (i, w) for i, w in
                   enumerate(["Волга", "长江", "Seine", "Thames", "Рейн", "黄河", "Loire", "Дон"])]
        alone = [generate([], path, "--temperature", "0", prompt=p, n=20, ignore_eos=False) for p in prompts]
        server = MpiServer(3, path, "--parallel", "8")
        try:
            jobs = [{"kind": "completion", "stream": True,
                     "params": {"model": "x", "prompt": p, "max_tokens": 20, "temperature": 0}} for p in prompts]
            together = server.client(jobs)
            for i, r in enumerate(together):
                self.assertNotIn("error", r)
                self.assertEqual(r["text"], alone[i]["text"], "stream %d" % i)
            pids = rank_pids(server.proc.pid)
            self.assertEqual(sorted(pids), [0, 1, 2])
            os.kill(pids[0], signal.SIGTERM)  # rank 0 stops the server, then the stages
            rc = server.proc.wait(timeout=60)
            err = server.proc.stderr.read().decode()
            server.proc.stderr.close()
            self.assertEqual(rc, 0, err)
            self.assertIn("pipeline over 3 MPI ranks", err)
        finally:
            if server.proc.poll() is None:
                server.proc.kill()

    def test_killed_rank_gets_503_and_ends_the_job(self):
        """kill -9 of rank 1 while a stream and a plain request run: the stream ends with a
        service_unavailable error event, the plain request gets HTTP 503 JSON, and the job ends."""
        path = synth("llama", *MODELS["llama"])
        # odls_base_sigkill_timeout: the launcher's grace between SIGTERM and SIGKILL (default 1 s),
        # so a busy 2-core CI machine still lets rank 0 answer before it is killed.
        server = MpiServer(3, path, "--parallel", "2", mpi_extra=["--mca", "odls_base_sigkill_timeout", "5"])
        try:
            pids = rank_pids(server.proc.pid)
            self.assertEqual(sorted(pids), [0, 1, 2])
            body = {"model": "x", "prompt": "Tell me a story", "max_tokens": 3000, "temperature": 1.0, "seed": 3}
            results = {}
            threads = [threading.Thread(target=post_json, args=(server.port, dict(body, stream=True), results, "stream")),
                       threading.Thread(target=post_json, args=(server.port, body, results, "plain"))]
            for t in threads:
                t.start()
            deadline = time.time() + 60
            while "stream_first" not in results and time.time() < deadline:
                time.sleep(0.01)
            self.assertIn("stream_first", results, results)
            t0 = time.time()
            os.kill(pids[1], signal.SIGKILL)
            rc = server.proc.wait(timeout=60)
            self.assertLess(time.time() - t0, 30)
            for t in threads:
                t.join(timeout=30)
            err = server.proc.stderr.read().decode()
            server.proc.stderr.close()
            self.assertNotEqual(rc, 0)
            self.assertRegex(err, r"rank 1|process rank 1|signal 9|Killed")
            self.assertIn("the MPI launcher is ending the job", err)
            status, events = results["stream"]
            self.assertEqual(status, 200)  # the stream had started; it ends with an error event
            errors = [e["error"] for e in events if isinstance(e, dict) and "error" in e]
            self.assertEqual(len(errors), 1, events[-3:])
            self.assertEqual(errors[0]["code"], "service_unavailable")
            status, reply = results["plain"]
            self.assertEqual(status, 503, reply)
            self.assertEqual(reply["error"]["code"], "service_unavailable")
            for pid in pids.values():  # no rank is left behind (zombies are reaped by their parent)
                try:
                    with open("/proc/%d/stat" % pid) as f:
                        state = f.read().split()[2]
                except OSError:
                    continue
                self.assertEqual(state, "Z", "rank process %d still runs" % pid)
        finally:
            if server.proc.poll() is None:
                server.proc.kill()


def post_json(port, body, results, key):
    """POST /v1/completions; results[key] = (status, JSON reply or list of SSE events);
    results[key + '_first'] is set when the first streamed event arrives."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        if not body.get("stream") or resp.status != 200:
            results[key] = (resp.status, json.loads(resp.read() or b"null"))
            return
        events = []
        for line in resp:
            line = line.decode().strip()
            if not line.startswith("data: "):
                continue
            results[key + "_first"] = True
            events.append(line[6:] if line[6:] == "[DONE]" else json.loads(line[6:]))
        results[key] = (resp.status, events)
    except (OSError, http.client.HTTPException) as e:
        results[key] = (None, repr(e))
    finally:
        conn.close()

RSS_WRAPPER = ("import os, resource, subprocess, sys\n"
               "rc = subprocess.call(sys.argv[1:])\n"
               "print('MAXRSS_KB %s %d' % (os.environ.get('OMPI_COMM_WORLD_RANK', '-'),"
               " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss), file=sys.stderr)\n"
               "sys.exit(rc)\n")


class PipelineMemory(unittest.TestCase):
    def test_each_of_three_ranks_holds_under_half_the_memory(self):
        # 9 layers of about 60 MB (f32): the weights dominate the process's own memory.
        path = synth("qwen3-big", "--arch", "qwen3", "--n-embd", "1024", "--n-ff", "4096", "--n-layer", "9",
                     "--n-head", "8", "--n-head-kv", "2", "--head-dim", "128")
        size = os.path.getsize(path)
        wrap = [sys.executable, "-c", RSS_WRAPPER]
        cmd = [VOLGA, "run", path, "-p", "hello", "-n", "1", "-t", "1", "--temperature", "0"]
        one = run([*wrap, *cmd]).stderr
        single = int(re.search(r"MAXRSS_KB - (\d+)", one).group(1))
        self.assertGreater(single * 1024, size * 0.9)  # the whole model was resident
        out = run([*mpirun_args(3), *wrap, *cmd]).stderr
        per_rank = {int(r): int(kb) for r, kb in re.findall(r"MAXRSS_KB (\d+) (\d+)", out)}
        self.assertEqual(sorted(per_rank), [0, 1, 2])
        for rank, kb in per_rank.items():
            self.assertLess(kb, single / 2, "rank %d: %d KiB, one process %d KiB" % (rank, kb, single))


if __name__ == "__main__":
    why = skip_reason()
    if why:  # ctest shows the test as skipped (SKIP_RETURN_CODE 77)
        print("SKIPPED: " + why, file=sys.stderr)
        sys.exit(77)
    unittest.main()
