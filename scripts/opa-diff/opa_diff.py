#!/usr/bin/env python3
"""Differential harness: guardrail against real OPA on a folder of policies.

OPA is the `opa_bindings` module (`pip install --ignore-requires-python opa-golib-python-bindings`:
OPA 1.x as a shared library). It reads Rego v1 only, so v0 modules are converted first (what
`opa fmt --v0-v1` does for the constructs policy libraries use: `if` before bodies, `contains` in
partial set heads); a module the converter cannot make parse is reported, not compared.

  opa_diff.py tests PATH...                 Rego unit tests: each test's pass/fail under OPA (one
                                            module set, copies of a test counted as OPA counts them,
                                            `--per-folder` for libraries tested folder by folder)
                                            against `guardrail verify -v PATH...`.
  opa_diff.py conftest -p POLICY FILE...    conftest rules (deny/warn/violation[_name], exceptions)
                                            on every document of FILE under OPA, against
                                            `guardrail check --no-builtin -f json -p POLICY FILE...`
                                            (`--namespace NS`, `--all-namespaces`, `--data PATH`
                                            as conftest's flags).

Prints every difference and a last line `N compared, N differences`; exits 1 on a difference.
GUARDRAIL names the binary (default: target/debug/guardrail).
"""

import argparse
import collections
import json
import os
import re
import subprocess
import sys

import yaml

try:
    import opa_bindings
except ImportError:  # pragma: no cover
    sys.exit("opa-diff needs OPA's Python bindings: pip install --ignore-requires-python opa-golib-python-bindings")

GUARDRAIL = os.environ.get("GUARDRAIL", os.path.join(os.path.dirname(__file__), "..", "..", "target", "debug", "guardrail"))
TEST_RULE = re.compile(r"(?m)^(test_[A-Za-z0-9_]+)(\s*(if\b|\{|:?=))")
CONFTEST_RULE = re.compile(r"(?m)^(deny|warn|violation)(_[A-Za-z0-9_]+)?\s*(\[|contains\b|if\b|\{|=|:=)")


# ---------------------------------------------------------------- v0 -> v1 ---------------------


def code_mask(text):
    """`text` with strings, raw strings and comments blanked (same length)."""
    out = list(text)
    i = 0
    while i < len(text):
        c = text[i]
        if c == '"':
            j = i + 1
            while j < len(text) and text[j] != '"' and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, len(text))
            for k in range(i, j):
                out[k] = "'" if text[k] != "\n" else "\n"
            i = j
        elif c == "`":
            j = text.find("`", i + 1)
            j = len(text) if j < 0 else j + 1
            for k in range(i, j):
                out[k] = "'" if text[k] != "\n" else "\n"
            i = j
        elif c == "#":
            j = text.find("\n", i)
            j = len(text) if j < 0 else j
            for k in range(i, j):
                out[k] = " "
            i = j
        else:
            i += 1
    return "".join(out)


HEAD_SET = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*)\[(.+)\]\s*$", re.S)


def convert_head(head):
    """A v0 rule head as v1 (without `if`)."""
    m = HEAD_SET.match(head)
    if m and "=" not in head[head.rfind("]"):]:
        return f"{m.group(1)}{m.group(2)} contains {m.group(3)}"
    return head


def to_v1(text):
    """v0 Rego as v1: `if` before rule bodies, `contains` for partial sets, chained bodies split."""
    if re.search(r"(?m)^import rego\.v1", text):
        return text
    mask = code_mask(text)
    out = []
    depth = 0
    stmt_start = None
    last = 0
    head = None
    opened_body = False
    i = 0
    while i < len(text):
        c = mask[i]
        if depth == 0 and (i == 0 or mask[i - 1] == "\n") and (c.isalpha() or c == "_") and not mask.startswith("else", i):
            stmt_start, head, opened_body = i, None, False  # a line at column 0 starts a statement
        if depth == 0 and stmt_start is None and not c.isspace():
            stmt_start = i
        if c in "[(":
            depth += 1
        elif c in "])":
            depth -= 1
        elif c == "{":
            if depth == 0:
                opened_body = False
            if depth == 0 and stmt_start is not None:
                raw_head = text[stmt_start:i]
                h = mask[stmt_start:i].rstrip()
                is_value = h.endswith(("=", ":=", ",", ":")) or h == "" or h.startswith(("package", "import"))
                if h.endswith("else") or re.search(r"\belse\s*:?=", h):
                    # else [= v] { -> else [= v] if {
                    out.append(text[last:i])
                    out.append("if ")
                    last = i
                    opened_body = True
                elif head is not None and mask[stmt_start:i].strip() == "":
                    pass
                elif not is_value and not re.search(r"\bif\s*$", h):
                    new_head = convert_head(raw_head.rstrip())
                    out.append(text[last:stmt_start])
                    out.append(new_head + " if ")
                    last = i
                    head = new_head
                    opened_body = True
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0 and opened_body:
                # a chained body `} {` becomes a new rule with the same head
                k = i + 1
                while k < len(text) and mask[k].isspace():
                    k += 1
                if k < len(text) and mask[k] == "{" and head is not None:
                    out.append(text[last : i + 1])
                    out.append("\n" + head + " if ")
                    last = k
                    i = k + 1
                    depth += 1
                    continue
                rest = mask[k : k + 4]
                if rest != "else":
                    stmt_start = None
                    head = None
        elif c == "\n" and depth == 0:
            line_start = mask.rfind("\n", 0, i) + 1
            line = mask[line_start:i]
            if stmt_start is not None and head is None:
                m = HEAD_SET.match(text[stmt_start:i])
                if m and not mask[stmt_start:i].strip().startswith(("package", "import", "default")) and "=" not in mask[stmt_start:i]:
                    out.append(text[last:stmt_start])
                    out.append(convert_head(text[stmt_start:i]))
                    last = i
                stmt_start = None
            del line
        i += 1
    out.append(text[last:])
    return "".join(out)


DEPRECATED = [(re.compile(r"(?<![\w.])re_match\("), "regex.match("), (re.compile(r"(?<![\w.])net\.cidr_overlap\("), "net.cidr_contains(")]


def opa_engine(files, data=None):
    """An OPA engine holding `files` ((name, text)); returns (engine, {name: error})."""
    engine = opa_bindings.OpaEngine()
    problems = {}
    for name, text in files:
        for pattern, replacement in DEPRECATED:
            text = pattern.sub(replacement, text)
        try:
            engine.add_policy(name, text)
        except opa_bindings.OpaError:
            try:
                engine.add_policy(name, to_v1(text))
            except opa_bindings.OpaError as e:
                problems[name] = str(e).splitlines()[0]
    if data:
        engine.add_data(data)
    return engine, problems


def evaluate(engine, query, input_value=None):
    """`("ok", value)`, `("undefined", None)` or `("error", message)`."""
    try:
        return ("ok", engine.eval_document(query, input_value))
    except opa_bindings.OpaUndefinedError:
        return ("undefined", None)
    except opa_bindings.OpaError as e:
        return ("error", str(e).splitlines()[0])


def package_of(text):
    m = re.search(r"(?m)^package\s+([A-Za-z0-9_.]+)", text)
    return m.group(1) if m else ""


def rego_files(paths):
    found = []
    for p in paths:
        if os.path.isfile(p):
            found.append(p)
            continue
        for root, dirs, names in os.walk(p):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for n in sorted(names):
                if n.endswith(".rego"):
                    found.append(os.path.join(root, n))
    return found


# ---------------------------------------------------------------- tests ------------------------


def opa_tests(files, data=None):
    """{(file, shown name): (passed, why)} for every test of `files`, run as one module set."""
    texts = []
    tests = []
    copies = collections.Counter()
    for path in files:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        package = package_of(text)

        def rename(m, path=path, package=package):
            name = m.group(1)
            n = copies[(package, name)]
            copies[(package, name)] += 1
            rule = name if n == 0 else f"{name}__opadiff{n}"
            tests.append((path, package, rule, name if n == 0 else f"{name}#{n:02d}"))
            return rule + m.group(2)

        texts.append((path, TEST_RULE.sub(rename, text)))
    engine, problems = opa_engine(texts, data)
    results = {}
    for path, package, rule, shown in tests:
        if path in problems:
            results[(path, shown)] = (None, "OPA could not load: " + problems[path])
            continue
        kind, value = evaluate(engine, f"{package}.{rule}")
        results[(path, shown)] = (kind == "ok" and value is True, kind if kind != "ok" else value)
    return results


def guardrail_tests(paths, extra):
    run = subprocess.run([GUARDRAIL, "verify", "-v", *extra, *paths], capture_output=True, text=True)
    results = {}
    for line in run.stdout.splitlines():
        m = re.match(r"^(ok  |FAIL) (.+) › (\S+)$", line)
        if m and m.group(2).endswith(".rego"):
            results[(os.path.normpath(m.group(2)), m.group(3))] = m.group(1) == "ok  "
    return results


def cmd_tests(args):
    files = rego_files(args.paths)
    data = load_data(args.data)
    groups = collections.defaultdict(list)
    if args.per_folder:
        for f in files:
            groups[os.path.dirname(f)].append(f)
    else:
        groups[""] = files
    oracle = {}
    for group in groups.values():
        oracle.update(opa_tests(group, data))
    extra = [x for d in args.data for x in ("--data", d)]
    got = guardrail_tests(args.paths, extra)
    differences = 0
    opa_pass = sum(1 for v in oracle.values() if v[0])
    for (path, name), (passed, why) in sorted(oracle.items()):
        mine = got.get((os.path.normpath(path), name))
        if passed is None:
            print(f"SKIP {path} › {name}: {why}")
            continue
        if mine is None or mine != passed:
            differences += 1
            print(f"DIFF {path} › {name}: OPA {'passes' if passed else 'fails (' + str(why) + ')'}, guardrail {'—' if mine is None else 'passes' if mine else 'fails'}")
    for key in sorted(set(got) - {(os.path.normpath(p), n) for p, n in oracle}):
        differences += 1
        print(f"DIFF {key[0]} › {key[1]}: guardrail runs a test OPA does not")
    print(f"OPA: {len(oracle)} tests, {opa_pass} passed; guardrail: {len(got)} tests, {sum(got.values())} passed")
    print(f"{len(oracle)} compared, {differences} differences")
    return 1 if differences else 0


# ---------------------------------------------------------------- conftest ---------------------


def load_data(paths):
    data = {}
    for p in paths or []:
        for path in ([p] if os.path.isfile(p) else [os.path.join(r, n) for r, _, ns in os.walk(p) for n in sorted(ns)]):
            if not path.endswith((".yaml", ".yml", ".json")):
                continue
            with open(path, encoding="utf-8") as f:
                for doc in yaml.safe_load_all(f):
                    if isinstance(doc, dict):
                        data.update(doc)
    return data


def documents(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith(".json"):
        return [json.loads(text)]
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    out = []
    for d in docs:
        # guardrail reads the items of a List as objects
        if isinstance(d, dict) and str(d.get("kind", "")).endswith("List") and isinstance(d.get("items"), list):
            out.extend(d["items"])
        else:
            out.append(d)
    return out


def conftest_messages(engine, packages, input_value):
    """conftest's failures and warnings for one input: [(package, message)]."""
    found = []
    for package, rules in packages.items():
        for rule in rules:
            name = "" if "_" not in rule else rule.split("_", 1)[1]
            kind, exc = evaluate(engine, f"{package}.exception", input_value)
            if kind == "ok" and isinstance(exc, list) and any(isinstance(e, list) and name in e for e in exc):
                continue
            kind, value = evaluate(engine, f"{package}.{rule}", input_value)
            if kind == "error":
                found.append((package, "ERROR " + value))
                continue
            if kind != "ok" or not isinstance(value, list):
                continue
            for item in value:
                if isinstance(item, str):
                    found.append((package, item))
                elif isinstance(item, dict) and isinstance(item.get("msg"), str):
                    found.append((package, item["msg"]))
    return found


def cmd_conftest(args):
    files = rego_files(args.policy)
    texts = []
    packages = collections.defaultdict(list)
    for path in files:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        texts.append((path, text))
        package = package_of(text)
        selected = args.all_namespaces or package in (args.namespace or ["main"])
        if selected:
            for m in CONFTEST_RULE.finditer(text):
                rule = m.group(1) + (m.group(2) or "")
                if rule not in packages[package]:
                    packages[package].append(rule)
    engine, problems = opa_engine(texts, load_data(args.data))
    for name, why in problems.items():
        print(f"SKIP {name}: OPA could not load it: {why}")
    oracle = collections.Counter()
    for path in args.files:
        for doc in documents(path):
            for package, message in conftest_messages(engine, packages, doc):
                oracle[(path, package, message)] += 1
    flags = [x for n in (args.namespace or []) for x in ("--rego-namespace", n)]
    flags += ["--all-namespaces"] if args.all_namespaces else []
    flags += [x for d in args.data or [] for x in ("--data", d)]
    flags += [x for p in args.policy for x in ("-p", p)]
    run = subprocess.run(
        [GUARDRAIL, "check", "--no-builtin", "--no-config", "-f", "json", "--allow-empty", *flags, *args.files],
        capture_output=True,
        text=True,
    )
    try:
        doc = json.loads(run.stdout)
    except json.JSONDecodeError:
        print("guardrail did not answer in JSON:", run.stderr.strip()[:2000])
        return 2
    got = collections.Counter()
    for f in doc.get("findings", []):
        message = f["message"]
        if "failed on this object" in message or "did not finish" in message:
            message = "ERROR " + message
        got[(f["file"], f["policy"], message)] += 1
    for e in doc.get("errors", []):
        print("guardrail error:", e)
    differences = 0
    for key in sorted(set(oracle) | set(got)):
        if oracle[key] != got[key]:
            differences += 1
            print(f"DIFF {key[0]} [{key[1]}] {key[2]!r}: OPA {oracle[key]}, guardrail {got[key]}")
    total = sum(oracle.values())
    print(f"OPA: {total} messages; guardrail: {sum(got.values())}")
    print(f"{len(set(oracle) | set(got))} compared, {differences} differences")
    return 1 if differences else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("tests")
    t.add_argument("paths", nargs="+")
    t.add_argument("--per-folder", action="store_true")
    t.add_argument("--data", action="append", default=[])
    c = sub.add_parser("conftest")
    c.add_argument("-p", "--policy", action="append", required=True)
    c.add_argument("--namespace", action="append")
    c.add_argument("--all-namespaces", action="store_true")
    c.add_argument("--data", action="append")
    c.add_argument("files", nargs="+")
    args = parser.parse_args()
    sys.exit(cmd_tests(args) if args.command == "tests" else cmd_conftest(args))


if __name__ == "__main__":
    main()
