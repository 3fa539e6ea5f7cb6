"""Faults, counted: what a clumsy user or an attacker gets from GPT-40k.

    python bench/faults.py [--kills 12]

Prints: bad commands that ended in a traceback (should be 0), checkpoints lost to kill -9 at
random moments of a training run (0), the peak memory of loading hostile configs (bounded: the
size of Python and torch, not of the config), and the longest any request held a slot of the
page's queue while a flood of the largest requests came in (under the 60 s budget).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.page import start_app  # noqa: E402
from gpt40k.project import default_checkpoint  # noqa: E402
from gpt40k.device import describe_cpu  # noqa: E402

SHIPPED = default_checkpoint()
PY = sys.executable


def book(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    words = "the emperor protects and in the grim darkness of the far future there is only war".split()
    rng = random.Random(0)
    (folder / "book.txt").write_text("\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(3000)))
    return folder


def bad_commands(work: Path) -> list[list[str]]:
    data = str(book(work / "books"))
    train = [PY, str(ROOT / "train.py"), "--data", data, "--preset", "tiny", "--max-iters", "3"]
    hostile = work / "hostile"
    hostile.mkdir()
    for name in ("model.safetensors", "tokenizer.json"):
        shutil.copyfile(SHIPPED / name, hostile / name)
    (hostile / "config.json").write_text("null")
    (work / "one.txt").write_text("x")
    (work / "nul.txt").write_bytes(b"the emperor " * 2000 + b"\0")
    sample = [PY, "-m", "gpt40k.sample"]
    return [
        train + ["--out", str(work / "a"), "--lr", "nan"], train + ["--out", str(work / "b"), "--beta1", "2"],
        train + ["--out", str(work / "c"), "--seed", str(10**30)], train + ["--out", ""],
        train + ["--out", str(work / "d"), "--lr", "1e30", "--eval-interval", "1"],
        [PY, str(ROOT / "train.py"), "--data", str(work / "one.txt"), "--preset", "tiny", "--out", str(work / "e")],
        [PY, str(ROOT / "train.py"), "--data", str(work / "nul.txt"), "--preset", "tiny", "--out", str(work / "f")],
        [PY, str(ROOT / "train.py"), "--resume", str(work / "nowhere")],
        sample + [str(SHIPPED), "--temperature", "nan"], sample + [str(SHIPPED), "--temperature", "-1"],
        sample + [str(hostile)], sample + [str(work / "nowhere")],
        [PY, "-m", "gpt40k.convert", "--from", "seed", str(work / "one.txt"), "--corpus", str(work / "one.txt"),
         "--out", str(work / "g")],
        [PY, "-m", "gpt40k.space", "deploy", "not a space"],
        # issue 23's causes, each once: work a run folder holds, hostile files, numbers out of range
        *_run_folder_cases(work, train), *_hostile_file_cases(work, sample),
        sample + [str(SHIPPED), "--seed", "9" * 23],
        [PY, "-m", "gpt40k.card", str(work / "nowhere")], [PY, "-m", "gpt40k.card", str(SHIPPED), "--note-file",
                                                          str(work / "missing.md")],
        [PY, str(ROOT / "app.py"), "--port", "-1"], [PY, str(ROOT / "app.py"), "--host", "999.999.1.1"],
        [PY, "-m", "gpt40k.convert", "--from", "seed", "x.pth", "--corpus", "x.txt", "--out", str(work / "books")],
    ]


def _run_folder_cases(work: Path, train: list[str]) -> list[list[str]]:
    """The same command twice (the second must refuse to replace the first run) and a folder of other files."""
    done = work / "done"
    subprocess.run(train + ["--out", str(done)], capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                   cwd=ROOT, timeout=300)
    mine = work / "mine"
    (mine / "best").mkdir(parents=True)
    (mine / "best" / "holiday.jpg").write_bytes(b"\xff\xd8")
    return [train + ["--out", str(done)], train + ["--out", str(mine)], train + ["--out", str(mine), "--overwrite"]]


def _hostile_file_cases(work: Path, sample: list[str]) -> list[list[str]]:
    cases = []
    for name, target in (("tokenizer.json", "/dev/zero"), ("config.json", "/etc/passwd")):
        folder = work / f"link-{name}"
        folder.mkdir()
        for own in ("config.json", "model.safetensors", "tokenizer.json"):
            shutil.copyfile(SHIPPED / own, folder / own)
        (folder / name).unlink()
        (folder / name).symlink_to(target)
        cases.append(sample + [str(folder), "--chars", "3"])
    nested = work / "nested"
    nested.mkdir()
    for own in ("model.safetensors", "tokenizer.json"):
        shutil.copyfile(SHIPPED / own, nested / own)
    (nested / "config.json").write_text("[" * 30000 + "]" * 30000)
    return cases + [sample + [str(nested), "--chars", "3"]]


def count_tracebacks(work: Path) -> tuple[int, int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    commands = bad_commands(work)
    tracebacks = 0
    for cmd in commands:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
        if "Traceback" in out.stdout + out.stderr or out.returncode == 0:
            tracebacks += 1
            print("  not clean:", " ".join(cmd[1:])[:120], out.returncode, file=sys.stderr)
    return tracebacks, len(commands)


def kill_training(work: Path, kills: int) -> int:
    """kill -9 a training run at random moments, resume each time; count checkpoints that could not load."""
    from gpt40k.checkpoint import load
    from gpt40k.hub.client import find_checkpoint

    out, lost = work / "killed", 0
    cmd = [PY, str(ROOT / "train.py"), "--data", str(book(work / "books")), "--preset", "tiny", "--out", str(out),
           "--max-iters", "100000", "--eval-interval", "5", "--sample-chars", "0"]
    rng = random.Random(1)
    for i in range(kills):
        proc = subprocess.Popen(cmd if i == 0 else [PY, str(ROOT / "train.py"), "--resume", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        time.sleep(rng.uniform(2.0, 5.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        try:
            load(find_checkpoint(out))
        except Exception as e:
            lost += 1
            print(f"  lost after kill {i + 1}: {e}", file=sys.stderr)
    return lost


def hostile_rss_mb(work: Path) -> float:
    """Peak memory of a process that loads configs asking for 10**6 layers and a 40,000-character block."""
    code = """
import json, resource, shutil, sys
from pathlib import Path
from gpt40k.checkpoint import load
src, work = Path(sys.argv[1]), Path(sys.argv[2])
for config in ({"vocab_size": 97, "block_size": 256, "n_layer": 10**6, "n_head": 6, "n_embd": 192},
               {"vocab_size": 97, "block_size": 40000, "n_layer": 4, "n_head": 6, "n_embd": 192}):
    (work / "config.json").write_text(json.dumps(config))
    try:
        load(work)
    except Exception:
        pass
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
    folder = work / "rss"
    folder.mkdir()
    for name in ("model.safetensors", "tokenizer.json"):
        shutil.copyfile(SHIPPED / name, folder / name)
    out = subprocess.run([PY, "-c", code, str(SHIPPED), str(folder)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    return float(out.stdout.strip().splitlines()[-1])


def longest_request_s(n_flood: int = 8) -> float:
    """Flood the page's generation event with the largest requests; the longest time one took."""
    import urllib.request

    proc, url = start_app(str(SHIPPED))
    try:
        deps = json.load(urllib.request.urlopen(url + "config"))["dependencies"]
        write = next(d["id"] for d in deps if len(d.get("inputs", [])) == 7)
        started = {}
        for i in range(n_flood):
            body = json.dumps({"data": [None, "war " * 25_000, 10**9, 2.0, 0, 1.0, i], "fn_index": write,
                               "session_hash": f"flood{i}", "event_data": None, "trigger_id": None}).encode()
            request = urllib.request.Request(url + "gradio_api/queue/join", data=body,
                                             headers={"Content-Type": "application/json"})
            urllib.request.urlopen(request, timeout=10)
            started[f"flood{i}"] = time.time()
        longest = 0.0
        for session, t0 in started.items():  # read each stream to its end
            with urllib.request.urlopen(url + f"gradio_api/queue/data?session_hash={session}", timeout=120) as r:
                for line in r:
                    if b'"process_completed"' in line:
                        break
            longest = max(longest, time.time() - t0)
        return longest
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=12)
    args = parser.parse_args()
    print(f"machine: {describe_cpu()}\n")  # the memory and time figures depend on it
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tracebacks, commands = count_tracebacks(work)
        lost = kill_training(work, args.kills)
        rss = hostile_rss_mb(work)
    longest = longest_request_s()
    print("| fault | result |\n|---|---|")
    print(f"| bad commands that ended in a traceback (or exit 0) | {tracebacks} of {commands} |")
    print(f"| checkpoints lost to {args.kills} kill -9 at random moments, resumed each time | {lost} |")
    print(f"| peak memory loading configs of 10**6 layers and a 40,000 block | {rss:.0f} MB |")
    print(f"| longest of 8 largest page requests sent at once, queue wait included (budget 60 s each) | {longest:.1f} s |")


if __name__ == "__main__":
    main()
