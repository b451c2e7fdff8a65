#!/usr/bin/env python3
"""Seeds fuzz/corpus/TARGET from the test corpus and hostile cases (issue 9 §8). Run once before the
first `scripts/fuzz run`; the committed corpora are this output after fuzzing and `scripts/fuzz cmin`."""
import hashlib
import json
import pathlib
import subprocess

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
MAX = 64 * 1024  # libFuzzer's default -max_len is 4096 once a corpus exists; small seeds mutate fast


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    if not data or len(data) > MAX:
        return
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def files(*globs):
    for g in globs:
        yield from sorted(p for p in ROOT.glob(g) if p.is_file())


# YAML loading with spans.
for p in files("tests/fixtures/**/*.yaml", "tests/fixtures/**/*.yml", "examples/**/*.yaml", "deploy/**/*.yaml"):
    put("yaml", p.read_bytes())
for text in [
    "a: &a {privileged: true}\nb:\n  privileged: false\n  <<: *a\n",
    "x: &x [*x]\n",
    "a: &a [1,1,1,1]\nb: &b [*a,*a,*a,*a]\nc: [*b,*b,*b,*b]\n",
    "k: 1\nk: 2\n",
    "%YAML 1.1\n---\nv: 0o17\nw: 017\ny: yes\nn: No\n",
    "- " * 200 + "x\n",
    "[" * 300 + "]" * 300,
    "{{ .Values.x }}\n# {{ in a comment }}\nkind: Pod\n",
    "apiVersion: v1\nkind: Pod\nmetadata: {name: \x1b[31mred\x1b]8;;x\x07}\n",
    "\ufeffkind: Pod\n---\n...\n---\nkind: Pod\n",
    "a: !!binary aGVsbG8=\nb: !custom x\nc: !!int '12'\n",
]:
    put("yaml", text)

# Terraform loading and evaluation: main.tf, then after NUL a module m/, then after NUL t.yaml.
for p in files("tests/fixtures/**/*.tf", "examples/**/*.tf"):
    put("terraform", p.read_bytes())
for text in [
    'locals { s = "ab" }\nlocals { t = "${local.s}${local.s}" }\n',
    'resource "kubernetes_pod" "p" {\n  count = 3\n  metadata { name = "p${count.index}" }\n'
    '  spec {\n    container {\n      security_context { privileged = length(range(10)) == 10 }\n    }\n  }\n}\n',
    'module "m" {\n  source = "./m"\n  n = 10\n}\n\0module "again" {\n  source = "./"\n  count = 10\n}\n',
    'locals { x = [for a in range(1000) : [for b in range(1000) : [for c in range(1000) : c]]] }\n',
    'locals { y = yamldecode(file("t.yaml")) }\n\0\0kind: Pod\nspec: {}\n',
    'locals { z = templatefile("main.tf", {}) }\n',
    'locals { f = flatten([for a in range(10) : [for b in range(10) : [for c in range(10) : c]]]) }\n',
    'resource "kubernetes_manifest" "m" {\n  manifest = yamldecode(<<-EOT\n    kind: Pod\n    EOT\n  )\n}\n',
]:
    put("terraform", text)

# Webhook intake: first byte = forge (bit 0: 0 GitHub, 1 GitLab) and event index (the rest).
GITHUB = ["pull_request", "check_run", "check_suite", "push", "installation"]
for p in files("tests/fixtures/github/webhooks/**/*.json"):
    event = p.parent.name
    body = json.dumps(json.loads(p.read_text()), separators=(",", ":")).encode()
    put("webhook", bytes([GITHUB.index(event) << 1]) + body)
project = {"id": 5, "path_with_namespace": "acme/app", "default_branch": "main"}
mr = {"iid": 3, "action": "update", "state": "opened", "oldrev": "c" * 40, "last_commit": {"id": "b" * 40},
      "source_project_id": 5, "target_project_id": 5}
gitlab = [
    (0, {"object_kind": "merge_request", "project": project, "object_attributes": mr,
         "changes": {"draft": {"previous": True, "current": False}}}),
    (1, {"object_kind": "note", "project": project,
         "object_attributes": {"id": 1, "note": "/guardrail rerun", "noteable_type": "MergeRequest", "author_id": 42,
                               "system": False},
         "merge_request": {"iid": 3, "state": "opened", "last_commit": {"id": "b" * 40}, "source_project_id": 5,
                           "target_project_id": 5}}),
    (2, {"object_kind": "push", "ref": "refs/heads/main", "before": "0" * 40, "after": "a" * 40,
         "project": {"id": 6, "path_with_namespace": "acme/policies", "default_branch": "main"}}),
    (4, {"object_kind": "merge_request", "project": project, "object_attributes": mr}),
]
for index, body in gitlab:
    put("webhook", bytes([index << 1 | 1]) + json.dumps(body, separators=(",", ":")).encode())

# Patches and diffs: this repository's own history, one file at a time, without the git header.
log = subprocess.run(["git", "-C", str(ROOT), "log", "-p", "-n", "40", "--format=", "--", "*.yaml", "*.tf", "*.md"],
                     capture_output=True, text=True, errors="replace").stdout
for chunk in log.split("diff --git ")[1:]:
    at = chunk.find("\n@@ ")
    if at >= 0:
        put("diff", chunk[at + 1:at + 1 + 4000])
for text in [
    "@@ -1,0 +1,2 @@\n+a\n+b\n",
    "@@ -4294967295,1 +4294967295,2 @@\n+a\n+b\n",
    "@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+b\n\\ No newline at end of file\n",
    "--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@ heading\n a\n-b\n+c\n\n d\n",
]:
    put("diff", text)

# The Rego rewriter: the built-in pack, the examples and the gatekeeper library when present.
def rego_of(p):
    if p.suffix == ".rego":
        yield p.read_text(errors="replace")
        return
    try:
        docs = list(yaml.safe_load_all(p.read_text(errors="replace")))
    except Exception:
        return
    for doc in docs:
        if not isinstance(doc, dict) or doc.get("kind") != "ConstraintTemplate":
            continue
        for t in (doc.get("spec") or {}).get("targets") or []:
            if isinstance(t.get("rego"), str):
                yield t["rego"]
            for lib in t.get("libs") or []:
                yield lib
            for code in t.get("code") or []:
                src = (code.get("source") or {})
                if isinstance(src.get("rego"), str):
                    yield src["rego"]


globs = ["policies/**/*.yaml", "policies/**/*.rego", "examples/**/*.rego", "examples/**/*.yaml",
         "tests/fixtures/**/*.rego", "tests/fixtures/**/*.yaml"]
for p in files(*globs):
    for text in rego_of(p):
        put("rego_rewrite", text)
gk = pathlib.Path("/tmp/gklib/library")
if gk.is_dir():
    for p in sorted(gk.glob("**/template.yaml")):
        for text in rego_of(p):
            put("rego_rewrite", text)
for text in [
    "package p\nviolation[{\"msg\": m}] { m := \"a\" } { m := \"b\" }\n",
    "package p\nf(x) = y { y := x }\nviolation[r] {\n  x := 1\n  (x + 1) > 0\n  r := {}\n}\n",
    "package p\nviolation[{\"msg\": m}] { not startswith(input.review.object.x.y, \"a\"); m := sprintf(\"%v %v\", [1]) }\n",
    "package p\nimport rego.v1\nf(x) := f(x)\ndeny contains m if { some c in \"abc\"; m := c }\n",
    "package p\ns := concat(\"\", [s2, s2])\ns2 := strings.repeat(\"a\", 1000000)\n",
]:
    put("rego_rewrite", text)

for d in sorted(CORPUS.iterdir()):
    print(d.name, len(list(d.iterdir())))
