#!/usr/bin/env python3
"""clang-tidy over the translation units of a build, remembering clean ones.

    scripts/tidy.py -p BUILD [-j N] [--cache DIR] REGEX

Checks every file of BUILD/compile_commands.json whose path matches REGEX, as
run-clang-tidy does, and exits non-zero when any has a finding (.clang-tidy
makes every warning an error).

With --cache, a file that was clean is remembered by a key over everything
clang-tidy reads for it, for each of its entries in the database: the compile
command, the raw bytes of every file the preprocessor opens (comments and
NOLINT markers included), whether each matches .clang-tidy's header filter at
its real path, the preprocessed text, the clang-tidy binary and packages, and
every .clang-tidy file. A remembered file is not checked again; a change to any
of these checks it afresh. Findings are never remembered. The checkout's own
path is taken out of the key, so a clean clone elsewhere (CI's) reuses what
this one checked. PQMCP_TIDY_CACHE=0 turns the cache off.
"""

import argparse
import concurrent.futures
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Compiler flags that name outputs: dropped when preprocessing for the key.
OUTPUT_FLAGS_WITH_ARG = {"-o", "-MT", "-MF", "-MQ"}
OUTPUT_FLAGS = {"-c", "-MD", "-MMD"}
# clang-tidy's own chatter, dropped from what is shown of a unit with findings.
NOISE = re.compile(r"^(\d+ warnings? generated\.|Suppressed \d+ warnings|Use -header-filter|Use -system-headers)")


# A line marker of the preprocessor's output: # LINE "FILE" FLAGS.
LINE_MARKER = re.compile(rb'^# \d+ "((?:[^"\\]|\\.)*)"', re.MULTILINE)


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


class Keys:
    """Computes the keys; each file read is hashed once per run, except
    when a key is taken again after a check (fresh), which reads every file
    anew so that an edit during the check (a comment too) is seen."""

    def __init__(self, common, header_filter):
        self.common = common
        self.header_filter = header_filter
        self.root = str(ROOT).encode()
        self.digests = {}
        self.lock = threading.Lock()

    def file_digest(self, path, fresh=False):
        known = None
        if not fresh:
            with self.lock:
                known = self.digests.get(path)
        if known is None:
            with open(path, "rb") as f:
                known = hashlib.sha256(f.read()).digest()
            if not fresh:
                with self.lock:
                    self.digests[path] = known
        return known

    def entry_key(self, entry, h, fresh=False):
        """Feeds one entry into h; False when it cannot be preprocessed."""
        try:
            pre = subprocess.run(preprocess_command(entry), cwd=entry["directory"],
                                 capture_output=True, timeout=300, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return False
        if pre.returncode != 0:
            return False
        files = set()
        for m in LINE_MARKER.finditer(pre.stdout):
            name = m.group(1).replace(b'\\"', b'"').replace(b"\\\\", b"\\").decode(errors="surrogateescape")
            # <built-in>, <command-line>, and with -g the working directory ("DIR//").
            if name.startswith("<") or name.endswith("//"):
                continue
            files.add(os.path.realpath(os.path.join(entry["directory"], name)))
        h.update(" ".join(unit_args(entry)).encode().replace(self.root, b"@ROOT@") + b"\0")
        h.update(entry["file"].encode().replace(self.root, b"@ROOT@") + b"\0")
        h.update(entry["directory"].encode().replace(self.root, b"@ROOT@") + b"\0")
        h.update(hashlib.sha256(pre.stdout.replace(self.root, b"@ROOT@")).digest())
        try:
            # Sorted as named in the key, so the order is the same in every clone.
            named = sorted((p.encode(errors="surrogateescape").replace(self.root, b"@ROOT@"), p) for p in files)
            for name, path in named:
                shown = bool(self.header_filter and self.header_filter.search(path))
                h.update(name + b"\0")
                h.update(b"1" if shown else b"0")
                h.update(self.file_digest(path, fresh))
        except OSError:
            return False
        return True

    def key(self, entries, fresh=False):
        """The key of one file over all its entries, or None."""
        h = hashlib.sha256(self.common)
        for entry in entries:
            if not self.entry_key(entry, h, fresh):
                return None
        return h.hexdigest()


def tidy_config():
    """Every .clang-tidy of the checkout, tracked or not, by name."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "--", "*.clang-tidy", ".clang-tidy"],
                            cwd=ROOT, capture_output=True, text=True, check=False)
    names = sorted(set(listed.stdout.split())) if listed.returncode == 0 else [".clang-tidy"]
    return {n: (ROOT / n).read_bytes() for n in names if (ROOT / n).is_file()}


def common_key(clang_tidy, configs):
    h = hashlib.sha256()
    h.update(subprocess.run([clang_tidy, "--version"], capture_output=True, check=True).stdout)
    # The binary's own package and those of its libraries and built-in headers:
    # an update that keeps the version string still changes the key.
    binary = os.path.realpath(shutil.which(clang_tidy) or clang_tidy)
    st = os.stat(binary)
    h.update(f"{binary} {st.st_size} {st.st_mtime_ns}\n".encode())
    packages = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Version}\\n", "clang-tidy*", "libclang-cpp*",
                               "libllvm*", "libclang-common*"], capture_output=True, check=False)
    h.update(packages.stdout)
    for name, text in sorted(configs.items()):
        h.update(name.encode() + b"\0" + text + b"\0")
    return h.digest()


def header_filter_of(configs):
    """.clang-tidy's HeaderFilterRegex (the top-level file's), compiled."""
    m = re.search(rb"^HeaderFilterRegex:\s*'([^']*)'", configs.get(".clang-tidy", b""), re.MULTILINE)
    return re.compile(m.group(1).decode()) if m else None


def check(name, entries, build, clang_tidy, cache, keys):
    """Checks one file: (name, clean, reused, what to show)."""
    key = keys.key(entries) if cache else None
    marker = cache / key[:2] / key if key else None
    try:
        if marker is not None and marker.exists():
            return name, True, True, ""
    except OSError:
        marker = None
    run = subprocess.run([clang_tidy, "-p", build, "-quiet", name], capture_output=True, text=True, check=False)
    shown = "\n".join(line for line in (run.stdout + run.stderr).splitlines() if not NOISE.match(line))
    clean = run.returncode == 0
    # Remembered only when nothing changed while clang-tidy read it.
    if clean and marker is not None and keys.key(entries, fresh=True) == key:
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        except OSError as e:
            print(f"tidy: cannot remember {name} as clean: {e}", file=sys.stderr)
    if not clean:
        shown = f"== {name} (clang-tidy exit status {run.returncode})\n{shown}"
    return name, clean, False, shown


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("-p", dest="build", required=True, help="build directory with compile_commands.json")
    ap.add_argument("-j", dest="jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--cache", help="directory remembering clean files")
    ap.add_argument("--clang-tidy", default="clang-tidy")
    ap.add_argument("filter", help="regular expression over the files' paths")
    args = ap.parse_args()

    build = str(Path(args.build).resolve())
    try:
        with open(Path(build) / "compile_commands.json", encoding="utf-8") as f:
            entries = json.load(f)
    except (OSError, ValueError) as e:
        print(f"tidy: cannot read the compilation database: {e}", file=sys.stderr)
        return 2
    wanted = re.compile(args.filter)
    files = {}
    for e in entries:
        if wanted.search(e["file"]):
            files.setdefault(e["file"], []).append(e)
    if not files:
        print(f"tidy: no file matches {args.filter}", file=sys.stderr)
        return 2

    cache = None
    if args.cache and os.environ.get("PQMCP_TIDY_CACHE", "1") != "0":
        cache = Path(args.cache)
    configs = tidy_config()
    try:
        keys = Keys(common_key(args.clang_tidy, configs), header_filter_of(configs))
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"tidy: cannot run {args.clang_tidy}: {e}", file=sys.stderr)
        return 2

    failed, reused = [], 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        jobs = [pool.submit(check, name, group, build, args.clang_tidy, cache, keys)
                for name, group in files.items()]
        for job in concurrent.futures.as_completed(jobs):
            name, clean, cached, shown = job.result()
            reused += cached
            if not clean:
                failed.append(name)
                print(shown, flush=True)
    print(f"tidy: {len(files)} files, {reused} unchanged since a clean check"
          + (f", {len(failed)} with findings" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
