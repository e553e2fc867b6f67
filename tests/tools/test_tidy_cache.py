#!/usr/bin/env python3
"""scripts/tidy.py's cache of clean files: what it reuses and what it checks again.

Two throwaway checkouts (a and b, the second a copy in another directory, as
CI's clone is) hold a copy of the script, a .clang-tidy, a header and a
source file, with a compilation database naming their own paths. A stand-in
for clang-tidy records each file it is asked to check and finds fault with a
file containing FINDING (or including a header that does), so that the
cache's decisions can be counted; the real clang-tidy is what `make tidy` runs.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "tidy.py"

FAKE_TIDY = """#!/bin/sh
if [ "$1" = --version ]; then echo "stand-in clang-tidy 1"; exit 0; fi
for last; do :; done
echo "$last" >> "$TIDY_LOG"
if [ -n "$TIDY_FIX" ]; then sed -i s/FINDING/fixed/ "$TIDY_FIX"; fi
if g++ -E -C -I"$(dirname "$last")/../include" -I"$(dirname "$last")/../../m-shared" "$last" | grep -q FINDING; then
  echo "$last:1:1: error: a finding [stand-in]"; exit 1
fi
exit 0
"""


class TidyCache(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="tidy-cache-"))
        self.cache = self.tmp / "cache"
        self.log = self.tmp / "checked.log"
        self.tidy = self.tmp / "clang-tidy"
        self.tidy.write_text(FAKE_TIDY)
        self.tidy.chmod(0o755)
        # A header outside every checkout (as the system's are), named in the
        # key between checkout a's files and clone z's.
        (self.tmp / "m-shared").mkdir()
        (self.tmp / "m-shared" / "s.hpp").write_text("#pragma once\ninline int s() { return 0; }\n")
        self.a = self.checkout("a")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def checkout(self, name):
        root = self.tmp / name
        (root / "scripts").mkdir(parents=True)
        shutil.copy(SCRIPT, root / "scripts" / "tidy.py")
        (root / "src").mkdir()
        (root / "include").mkdir()
        (root / "build").mkdir()
        (root / ".clang-tidy").write_text("Checks: '-*,bugprone-*'\nHeaderFilterRegex: '(include)/.*'\n")
        (root / "include" / "h.hpp").write_text("#pragma once\ninline int h() { return 1; }\n")
        (root / "src" / "x.cpp").write_text('#include "h.hpp"\n#include "s.hpp"\n// NOLINT(bugprone-x): FINDING\nint x() { return h(); }\n')
        (root / "src" / "y.cpp").write_text("int y() { return 2; }\n")
        self.write_database(root)
        return root

    def write_database(self, root):
        entries = [{"directory": str(root / "build"), "file": str(root / "src" / f),
                    "command": f"g++ -I{root}/include -I{self.tmp}/m-shared -std=c++20 -o {f}.o -c {root}/src/{f}"}
                   for f in ("x.cpp", "y.cpp")]
        (root / "build" / "compile_commands.json").write_text(json.dumps(entries))

    def run_tidy(self, root, env=None):
        self.log.write_text("")
        run = subprocess.run([sys.executable, str(root / "scripts" / "tidy.py"), "-p", str(root / "build"),
                              "-j", "2", "--cache", str(self.cache), "--clang-tidy", str(self.tidy), f"^{root}/src/"],
                             capture_output=True, text=True, timeout=120, check=False,
                             env={**os.environ, "TIDY_LOG": str(self.log), **(env or {})})
        checked = sorted(Path(line).name for line in self.log.read_text().split())
        return run.returncode, checked, run.stdout + run.stderr

    def test_findings_are_never_remembered(self):
        rc, checked, out = self.run_tidy(self.a)
        self.assertEqual(rc, 1, out)
        self.assertEqual(checked, ["x.cpp", "y.cpp"])
        self.assertIn("x.cpp:1:1: error: a finding", out)
        rc, checked, out = self.run_tidy(self.a)
        self.assertEqual(rc, 1, out)
        self.assertEqual(checked, ["x.cpp"], "the clean file is reused, the one with a finding checked again")

    def test_a_comment_or_a_header_checks_again(self):
        x = self.a / "src" / "x.cpp"
        # Only a comment changes: the preprocessed text stays the same.
        x.write_text(x.read_text().replace("FINDING", "fixed"))
        self.assertEqual(self.run_tidy(self.a)[:2], (0, ["x.cpp", "y.cpp"]))
        self.assertEqual(self.run_tidy(self.a)[:2], (0, []))
        x.write_text(x.read_text().replace("fixed", "FINDING"))
        self.assertEqual(self.run_tidy(self.a)[:2], (1, ["x.cpp"]))
        # Back to a text found clean before: remembered.
        x.write_text(x.read_text().replace("FINDING", "fixed"))
        self.assertEqual(self.run_tidy(self.a)[:2], (0, []))
        (self.a / "include" / "h.hpp").write_text("#pragma once\n// FINDING\ninline int h() { return 1; }\n")
        rc, checked, _ = self.run_tidy(self.a)
        self.assertEqual((rc, checked), (1, ["x.cpp"]), "only the file that includes the header")

    def test_a_header_edited_during_the_check_is_not_remembered(self):
        h = self.a / "include" / "h.hpp"
        found = "#pragma once\n// FINDING\ninline int h() { return 1; }\n"
        h.write_text(found)
        y = self.a / "src" / "y.cpp"
        y.write_text('#include "h.hpp"\nint y() { return h(); }\n')
        # The header loses its finding after the key was taken and before
        # clang-tidy reads it: y is found clean, but not as keyed.
        rc, checked, _ = self.run_tidy(self.a, {"TIDY_FIX": str(h)})
        self.assertEqual((rc, checked), (1, ["x.cpp", "y.cpp"]))  # x: its own finding
        h.write_text(found)
        rc, checked, out = self.run_tidy(self.a)
        self.assertEqual((rc, checked), (1, ["x.cpp", "y.cpp"]), "the header as keyed was never checked")
        self.assertIn("y.cpp:1:1: error: a finding", out)

    def test_configuration_and_command_check_again(self):
        x = self.a / "src" / "x.cpp"
        x.write_text(x.read_text().replace("FINDING", "fixed"))
        self.run_tidy(self.a)
        (self.a / ".clang-tidy").write_text("Checks: '-*,performance-*'\nHeaderFilterRegex: '(include)/.*'\n")
        self.assertEqual(self.run_tidy(self.a)[:2], (0, ["x.cpp", "y.cpp"]))
        db = self.a / "build" / "compile_commands.json"
        db.write_text(db.read_text().replace("-std=c++20", "-std=c++20 -DMORE"))
        self.assertEqual(self.run_tidy(self.a)[:2], (0, ["x.cpp", "y.cpp"]))
        self.assertEqual(self.run_tidy(self.a, {"PQMCP_TIDY_CACHE": "0"})[:2], (0, ["x.cpp", "y.cpp"]))

    def test_a_clone_elsewhere_reuses(self):
        x = self.a / "src" / "x.cpp"
        x.write_text(x.read_text().replace("FINDING", "fixed"))
        self.run_tidy(self.a)
        b = self.checkout("z")
        (b / "src" / "x.cpp").write_text(x.read_text())
        self.assertEqual(self.run_tidy(b)[:2], (0, []))
        (b / "src" / "y.cpp").write_text("int y() { return 3; }\n")
        self.assertEqual(self.run_tidy(b)[:2], (0, ["y.cpp"]))

    def test_no_file_or_no_clang_tidy(self):
        run = subprocess.run([sys.executable, str(self.a / "scripts" / "tidy.py"), "-p", str(self.a / "build"),
                              "--clang-tidy", str(self.tidy), "nothing-matches"],
                             capture_output=True, text=True, check=False)
        self.assertEqual(run.returncode, 2)
        self.assertIn("no file matches nothing-matches", run.stderr)
        run = subprocess.run([sys.executable, str(self.a / "scripts" / "tidy.py"), "-p", str(self.a / "build"),
                              "--clang-tidy", str(self.tmp / "absent"), "src"],
                             capture_output=True, text=True, check=False)
        self.assertEqual(run.returncode, 2)
        self.assertIn("cannot run", run.stderr)


if __name__ == "__main__":
    unittest.main()
