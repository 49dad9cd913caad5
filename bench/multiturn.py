#!/usr/bin/python3
"""Bounded multi-turn chat run on loopback: time to first token of each turn of
conversations that share a long system prompt, and the server's prefix-cache
counters. Turn 1 prefills the system prompt; later turns should reuse it.

    /usr/bin/python3 bench/multiturn.py MODEL.gguf [--system-tokens 1000] [--turns 4]
        [--conversations 1] [--tokens 16] [--threads 2]

Prints one JSON object; the figures go to docs/PERFORMANCE.md with the command."""
import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
WORDS = ("река", "Волга", "берег", "город", "river", "bank", "ship", "长江", "север", "юг", "вода", "lock")
QUESTIONS = ("Где начинается Волга?", "А где она впадает в море?", "Какие города стоят на ней?",
             "Сколько на ней шлюзов?", "Расскажи про Дон.", "Спасибо!")


def system_prompt(n_words):
    return "Ты помощник. Справка: " + " ".join(WORDS[(i * 7) % len(WORDS)] for i in range(n_words))


def start_server(a, port):
    proc = subprocess.Popen([a.volga, "serve", a.model, "--port", str(port), "--parallel", str(a.conversations),
                             "-c", str(a.ctx), "-t", str(a.threads)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(1200):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


def stream_chat(port, messages, max_tokens):
    """Returns (seconds to the first content token, reply text, completion tokens)."""
    body = json.dumps({"messages": messages, "max_tokens": max_tokens, "temperature": 0, "stream": True,
                       "stream_options": {"include_usage": True}})
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    t0 = time.time()
    c.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    ttft, text, n = None, "", 0
    for raw in r:
        line = raw.decode("utf-8").strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        ev = json.loads(line[6:])
        if ev.get("usage"):
            n = ev["usage"]["completion_tokens"]
        for ch in ev.get("choices", []):
            piece = ch.get("delta", {}).get("content")
            if piece:
                if ttft is None:
                    ttft = time.time() - t0
                text += piece
    return (ttft if ttft is not None else time.time() - t0), text, n


def conversation(port, a, system, ttfts, tokens):
    messages = [{"role": "system", "content": system}]
    for t in range(a.turns):
        messages.append({"role": "user", "content": QUESTIONS[t % len(QUESTIONS)]})
        ttft, text, n = stream_chat(port, messages, a.tokens)
        messages.append({"role": "assistant", "content": text})
        ttfts[t].append(ttft)
        tokens.append(n)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--system-words", type=int, default=500, help="words of the shared system prompt")
    ap.add_argument("--turns", type=int, default=4)
    ap.add_argument("--conversations", type=int, default=1, help="run at once, one slot each")
    ap.add_argument("--tokens", type=int, default=16, help="max tokens per reply")
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--volga", default=os.path.join(ROOT, "build", "bin", "volga"))
    a = ap.parse_args()

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = start_server(a, port)
    try:
        system = system_prompt(a.system_words)
        ttfts, tokens = [[] for _ in range(a.turns)], []
        threads = [threading.Thread(target=conversation, args=(port, a, system, ttfts, tokens))
                   for _ in range(a.conversations)]
        t0 = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.time() - t0
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", "/health")
        health = json.loads(c.getresponse().read())
    finally:
        proc.terminate()
        proc.wait(60)
    first = statistics.median(ttfts[0])
    print(json.dumps({
        "conversations": a.conversations, "turns": a.turns, "system_words": a.system_words,
        "ttft_median_s": [round(statistics.median(x), 3) for x in ttfts],
        "ttft_fraction_of_turn1": [round(statistics.median(x) / first, 3) for x in ttfts],
        "aggregate_tokens_per_s": round(sum(tokens) / wall, 2),
        "prefix_cache": health.get("prefix_cache"),
    }, indent=2))


if __name__ == "__main__":
    main()
