#!/usr/bin/env python3
"""Runs a policy library's conftest bats cases (redhat-cop/rego-policies' _test/conftest-unittests.sh
layout: `tmp=$(split_files "DIR")`, `cmd="conftest test ${tmp} ... --namespace NS ..."`, then the
expected `$status` and `not ok N - FILE - NS - MESSAGE` lines) with guardrail instead of conftest,
from the library's root, and compares the exit status and the messages.

  bats_cases.py LIBRARY_ROOT BATS_FILE

Prints each case that differs and `N passed, N failed`. GUARDRAIL names the binary.
"""

import json
import os
import re
import shlex
import subprocess
import sys

GUARDRAIL = os.environ.get("GUARDRAIL", os.path.join(os.path.dirname(__file__), "..", "..", "target", "debug", "guardrail"))


def cases(text):
    for block in re.split(r"\n@test ", text)[1:]:
        name = block.split('"')[1]
        split = re.search(r'tmp=\$\(split_files "([^"]+)"', block)
        cmd = re.search(r'cmd="conftest test ([^"]+)"', block)
        status = re.search(r'\[ "\$status" -eq (\d+) \]', block)
        if not (split and cmd and status):
            continue
        variables = dict(re.findall(r'^\s*(\w+)="([^"$]+)"\s*$', block, re.M))
        expected = [m for m in re.findall(r'"\$\{lines\[\d+\]\}" = "not ok \d+ - (.*)" \]', block)]
        yield name, split.group(1), cmd.group(1), int(status.group(1)), expected, variables


def translate(source, cmd, variables):
    """conftest's arguments as guardrail's."""
    words = shlex.split(cmd)
    out = ["check", "--no-builtin", "--no-config", "-f", "json", "-p", "policy"]
    i = 0
    while i < len(words):
        w = words[i]
        value = words[i + 1] if i + 1 < len(words) else ""
        for k, v in variables.items():
            value = value.replace("${" + k + "}", v)
        if w == "--namespace":
            out += ["--rego-namespace", value]
            i += 2
        elif w == "--data":
            out += ["--data", value]
            i += 2
        elif w in ("--output", "--rego-version"):
            i += 2
        elif w in ("--combine", "--all-namespaces"):
            out.append(w)
            i += 1
        elif w.startswith("${tmp}"):
            out.append(source if os.path.isdir(source) else os.path.join(os.path.dirname(source), w[len("${tmp}/") :]) if w != "${tmp}" else source)
            i += 1
        else:
            i += 1
    return out


def main():
    root, bats = sys.argv[1], sys.argv[2]
    with open(bats, encoding="utf-8") as f:
        text = f.read()
    passed = failed = 0
    for name, source, cmd, status, expected, variables in cases(text):
        args = translate(source, cmd, variables)
        run = subprocess.run([GUARDRAIL, *args], cwd=root, capture_output=True, text=True)
        try:
            doc = json.loads(run.stdout)
        except json.JSONDecodeError:
            doc = {"findings": [], "errors": [run.stderr.strip()]}
        got = sorted(f["message"] for f in doc["findings"])
        want = sorted(line.split(" - ", 2)[2] if line.count(" - ") >= 2 else line for line in expected)
        code = run.returncode
        ok = code == status and (not want or got == want) and not doc.get("errors")
        if ok:
            passed += 1
        else:
            failed += 1
            print(f"FAIL {name}: exit {code} (want {status}); errors {doc.get('errors')}")
            for m in sorted(set(want) - set(got)):
                print(f"     missing: {m[:160]}")
            for m in sorted(set(got) - set(want)):
                print(f"     extra:   {m[:160]}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
