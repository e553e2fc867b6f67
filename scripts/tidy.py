#!/usr/bin/env python3
"""clang-tidy over the translation units of a build, remembering clean ones.

    scripts/tidy.py -p BUILD [-j N] [--cache DIR] REGEX

Checks every file of BUILD/compile_commands.json whose path matches REGEX, as
run-clang-tidy does, and exits non-zero when any has a finding (.clang-tidy
makes every warning an error).

With --cache, a unit that was clean is remembered by a key over everything
clang-tidy reads: the unit's preprocessed text (so every header it includes),
its compile command, the clang-tidy version and the .clang-tidy files. A unit
whose key is remembered is not checked again; any change to it or to a header
it includes checks it afresh. Findings are never remembered. The checkout's
own path is taken out of the key, so a clean clone elsewhere (CI's) reuses
what this one checked. PQMCP_TIDY_CACHE=0 turns the cache off.
"""

import argparse
import concurrent.futures
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Compiler flags that name outputs: dropped when preprocessing for the key.
OUTPUT_FLAGS_WITH_ARG = {"-o", "-MT", "-MF", "-MQ"}
OUTPUT_FLAGS = {"-c", "-MD", "-MMD"}
# clang-tidy's own chatter, dropped from what is shown of a unit with findings.
NOISE = re.compile(r"^(\d+ warnings? generated\.|Suppressed \d+ warnings|Use -header-filter|Use -system-headers)")


def unit_args(entry):
    if "arguments" in entry:
        return list(entry["arguments"])
    return shlex.split(entry["command"])


def preprocess_command(entry):
    args = unit_args(entry)
    # A compiler launcher (ccache) in front of the compiler is not needed here.
    if args and os.path.basename(args[0]) == "ccache":
        args = args[1:]
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a in OUTPUT_FLAGS_WITH_ARG:
            skip = True
            continue
        if a in OUTPUT_FLAGS:
            continue
        out.append(a)
    return out + ["-E", "-o", "-"]


def unit_key(entry, common):
    """The key of one unit, or None when it cannot be preprocessed."""
    try:
        pre = subprocess.run(preprocess_command(entry), cwd=entry["directory"],
                             capture_output=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if pre.returncode != 0:
        return None
    root = str(ROOT).encode()
    h = hashlib.sha256(common)
    h.update(" ".join(unit_args(entry)).encode().replace(root, b"@ROOT@"))
    h.update(b"\0")
    h.update(entry["file"].encode().replace(root, b"@ROOT@"))
    h.update(b"\0")
    h.update(pre.stdout.replace(root, b"@ROOT@"))
    return h.hexdigest()


def common_key(clang_tidy):
    h = hashlib.sha256()
    version = subprocess.run([clang_tidy, "--version"], capture_output=True, check=True)
    h.update(version.stdout)
    listed = subprocess.run(["git", "ls-files", "*.clang-tidy", ".clang-tidy"], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    configs = sorted(set(listed.stdout.split())) if listed.returncode == 0 else [".clang-tidy"]
    for name in configs:
        path = ROOT / name
        if path.exists():
            h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.digest()


def check(entry, build, clang_tidy, cache, common):
    key = unit_key(entry, common) if cache else None
    marker = cache / key[:2] / key if key else None
    if marker is not None and marker.exists():
        return entry["file"], True, True, ""
    run = subprocess.run([clang_tidy, "-p", build, "-quiet", entry["file"]],
                         capture_output=True, text=True, check=False)
    shown = "\n".join(line for line in (run.stdout + run.stderr).splitlines()
                      if not NOISE.match(line))
    clean = run.returncode == 0
    if clean and marker is not None:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    return entry["file"], clean, False, shown


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-p", dest="build", required=True, help="build directory with compile_commands.json")
    ap.add_argument("-j", dest="jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--cache", help="directory remembering clean units")
    ap.add_argument("--clang-tidy", default="clang-tidy")
    ap.add_argument("filter", help="regular expression over the units' paths")
    args = ap.parse_args()

    build = str(Path(args.build).resolve())
    with open(Path(build) / "compile_commands.json", encoding="utf-8") as f:
        entries = json.load(f)
    wanted = re.compile(args.filter)
    units, seen = [], set()
    for e in entries:
        if wanted.search(e["file"]) and e["file"] not in seen:
            seen.add(e["file"])
            units.append(e)
    if not units:
        print(f"tidy: no unit matches {args.filter}", file=sys.stderr)
        return 1

    cache = None
    if args.cache and os.environ.get("PQMCP_TIDY_CACHE", "1") != "0":
        cache = Path(args.cache)
    common = common_key(args.clang_tidy)

    failed, reused = [], 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        jobs = [pool.submit(check, e, build, args.clang_tidy, cache, common) for e in units]
        for job in concurrent.futures.as_completed(jobs):
            name, clean, cached, shown = job.result()
            reused += cached
            if not clean:
                failed.append(name)
                print(shown, flush=True)
    print(f"tidy: {len(units)} units, {reused} unchanged since a clean check"
          + (f", {len(failed)} with findings" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
