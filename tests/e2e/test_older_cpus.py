"""Volga on x86-64 CPUs older than this machine's, emulated by qemu-user.

The kernel sets are compiled with their own ISA flags (AVX2, AVX-512) in one
binary, and chosen at start-up from CPUID. Two things can only be checked on
a CPU that lacks those instructions: that start-up picks the right set, and
that no AVX instruction runs on the other paths (for example an inline
function from a shared header whose AVX-compiled copy the linker kept).
qemu-x86_64 emulates a Westmere (SSE4.2, no AVX: the scalar reference) and a
Haswell (AVX2 and FMA, no AVX-512). On each, `volga info` must name the set
start-up chose (and a forced set the CPU lacks must be refused), and the logits of a prompt must be
bit for bit those of a native run with the same kernel set forced
(VOLGA_ISA), and so those of the native default set: the kernels are
bit-identical across ISAs.

Run with Debian's /usr/bin/python3 (numpy); needs qemu-user
(scripts/install-deps.sh installs it)."""
import os
import platform
import shutil
import subprocess
import tempfile
import unittest

import numpy as np

ROOT = os.environ.get("VOLGA_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
VOLGA = os.environ.get("VOLGA_BIN", os.path.join(ROOT, "build", "bin", "volga"))
SYNTH = os.environ.get("VOLGA_SYNTH", os.path.join(ROOT, "build", "bin", "volga-synth"))
QEMU = shutil.which("qemu-x86_64")
TMP = tempfile.mkdtemp(prefix="volga-oldcpu-")
IDS = "1,15,27,200,3,99,41,7,300,12,5,64"
CPUS = {"Westmere": "ref", "Haswell": "avx2"}


def run(args, env=None):
    p = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    if p.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr[-2000:]))
    return p


def logits(model, name, prefix=(), isa=None):
    out = os.path.join(TMP, "%s-%s.npy" % (os.path.basename(model), name))
    env = dict(os.environ)
    env.pop("VOLGA_ISA", None)
    if isa:
        env["VOLGA_ISA"] = isa
    run(list(prefix) + [VOLGA, "logits", model, "--ids", IDS, "-t", "1", "-o", out], env)
    return np.load(out)


def synth(name, *args):
    path = os.path.join(TMP, name + ".gguf")
    if not os.path.exists(path):
        run([SYNTH, "-q", "-o", path, *args])
    return path


@unittest.skipUnless(platform.machine() in ("x86_64", "AMD64"), "x86-64 only")
class OlderCpus(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if QEMU is None:
            raise AssertionError("qemu-x86_64 is missing: scripts/install-deps.sh installs qemu-user")

    def check(self, model):
        native = logits(model, "native")
        self.assertTrue(np.isfinite(native).all())
        for cpu, isa in CPUS.items():
            forced = logits(model, "native-" + isa, isa=isa)
            emulated = logits(model, cpu, prefix=(QEMU, "-cpu", cpu))
            self.assertTrue(np.array_equal(forced, emulated),
                            "%s on an emulated %s differs from VOLGA_ISA=%s natively" % (model, cpu, isa))
            self.assertTrue(np.array_equal(native, emulated),
                            "%s on an emulated %s differs from the native default kernels" % (model, cpu))

    def test_start_up_picks_the_best_set_the_cpu_has(self):
        demo = os.path.join(ROOT, "models", "volga-demo-f16.gguf")
        for cpu, isa in CPUS.items():
            env = dict(os.environ)
            env.pop("VOLGA_ISA", None)
            info = run([QEMU, "-cpu", cpu, VOLGA, "info", demo], env).stdout
            line = next((l for l in info.splitlines() if l.startswith("kernels:")), "")
            self.assertEqual(line.split()[1:2], [isa], "%s: volga info says %r" % (cpu, line))
            # A set the CPU lacks is refused with a message, not run.
            beyond = {"ref": "avx2", "avx2": "avx512"}[isa]
            p = subprocess.run([QEMU, "-cpu", cpu, VOLGA, "info", demo], capture_output=True, text=True,
                               env=dict(env, VOLGA_ISA=beyond), timeout=600)
            self.assertNotEqual(p.returncode, 0, "%s ran VOLGA_ISA=%s" % (cpu, beyond))
            self.assertIn("not supported by this CPU", p.stderr)

    def test_demo_f16(self):
        self.check(os.path.join(ROOT, "models", "volga-demo-f16.gguf"))

    def test_demo_q8_0(self):
        self.check(os.path.join(ROOT, "models", "volga-demo-q8_0.gguf"))

    def test_qwen3_q4_k_m(self):
        self.check(synth("qwen3-q4km", "--arch", "qwen3", "--type", "q4_k_m", "--n-layer", "2"))

    def test_qwen35_iq2_xxs(self):
        self.check(synth("qwen35-iq2", "--arch", "qwen35", "--type", "iq2_xxs", "--n-layer", "4"))

    def test_deepseek2_bf16(self):
        self.check(synth("deepseek2-bf16", "--arch", "deepseek2", "--type", "bf16", "--n-layer", "2"))


if __name__ == "__main__":
    unittest.main()
