//! Property tests for the YAML loader: whatever the bytes, loading ends with findings or
//! resources, never a panic, and every finding points inside the file.

use guardrail::manifest::{load_text, LoadOptions, Loaded};
use proptest::prelude::*;

const TOKENS: &[&str] = &[
    "apiVersion: v1\n",
    "kind: Pod\n",
    "metadata:\n",
    "  name: x\n",
    "spec:\n",
    "- ",
    "  ",
    "- - ",
    "&a ",
    "*a ",
    "<<: *a\n",
    "{",
    "}",
    "[",
    "]",
    ",",
    ": ",
    "\"",
    "'",
    "|\n",
    ">-\n",
    "---\n",
    "...\n",
    "yes",
    "0644",
    "0o7",
    "~",
    "null",
    "!!str ",
    "!tag ",
    "#c\n",
    "\n",
    "\t",
    "\r",
    "key",
    "é",
    "{{ .Values.x }}",
    "? ",
    "%YAML 1.2\n",
    "\\",
    "\u{feff}",
];

fn yamlish() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..120).prop_map(|t| t.concat())
}

fn check(text: &str) {
    let mut out = Loaded::default();
    load_text("f.yaml", text, &LoadOptions::default(), &mut out);
    let lines = text.split('\n').count() as u32 + 1;
    for f in &out.findings {
        assert!(f.region.line >= 1 && f.region.line <= lines, "finding outside the file: {f:?}\n{text:?}");
    }
    for r in &out.resources {
        let _ = r.origin.head();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn yaml_token_soup_never_panics(text in yamlish()) {
        check(&text);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        check(&text);
    }

    #[test]
    fn mutated_examples_never_panic(cut in 0usize..2000, insert in prop::sample::select(TOKENS)) {
        let base = include_str!("../../examples/api.yaml");
        let at = base.char_indices().map(|(i, _)| i).nth(cut % base.chars().count()).unwrap_or(0);
        let text = format!("{}{}{}", &base[..at], insert, &base[at..]);
        check(&text);
    }
}

/// Found by `scripts/fuzz run diff`: a hunk numbered up to u32::MAX overflowed the line counters of
/// both patch readers (a panic with overflow checks, line 0 without). Its rest is not numbered.
#[test]
fn a_hunk_at_the_last_line_number_does_not_overflow() {
    let patch = "@@ -4294967295,1 +4294967295,2 @@\n+a\n+b\n";
    let lines = guardrail::report::review::commentable_lines(patch);
    assert_eq!(lines.into_iter().collect::<Vec<_>>(), vec![u32::MAX]);
    let diff = guardrail::forge::gitlab::FileDiff::parse("a", "a", patch);
    assert_eq!(diff.added_lines().collect::<Vec<_>>(), vec![u32::MAX]);
    let diff = guardrail::forge::gitlab::FileDiff::parse("a", "a", "@@ -4294967295,2 +1,2 @@\n a\n-b\n c\n+d\n");
    let numbered: Vec<(Option<u32>, Option<u32>)> = diff.lines.iter().map(|l| (l.old_line(), l.new_line())).collect();
    assert_eq!(numbered, vec![(Some(u32::MAX), Some(1))]);
}

/// Found by `scripts/fuzz run yaml`: YAML breaks lines at a lone `\r`, so a syntax error after one
/// was reported on a line past the end of the file (GitHub counts `\n` lines and refuses such an
/// annotation). The position is now the same place counted in `\n` lines: the bad character.
#[test]
fn a_yaml_error_after_lone_carriage_returns_points_inside_the_file() {
    let fuzzed = format!("{}\u{ff}\r- - \u{5}\0", "- ".repeat(30));
    for text in ["x: 1\r\ry: \u{5}\nz: 2\n", "a: b\nx: 1\r\r\ry: \u{5}\n", fuzzed.as_str()] {
        let mut out = Loaded::default();
        load_text("f.yaml", text, &LoadOptions::default(), &mut out);
        let before = &text[..text.find('\u{5}').unwrap()];
        let line = before.matches('\n').count() as u32 + 1;
        let column = before.rsplit('\n').next().unwrap().chars().count() as u32 + 1;
        let regions: Vec<(u32, u32)> = out.findings.iter().map(|f| (f.region.line, f.region.column)).collect();
        assert_eq!(regions, vec![(line, column)], "{text:?}: {:#?}", out.findings);
    }
}

/// Regorus parses `original` (Rego v0 or v1), and `rewritten` too, each in an engine of its own.
fn assert_both_parse(original: &str, rewritten: &str, v0: bool) {
    for (text, what) in [(original, "the original"), (rewritten, "the rewrite")] {
        let mut engine = regorus::Engine::new();
        engine.set_rego_v0(v0);
        engine.add_policy("p.rego".into(), text.into()).unwrap_or_else(|e| panic!("{what}: {e}\n{text}"));
    }
}

/// A v1 module's rewrite holds `wanted` (how the collection is wrapped), and both texts parse.
fn assert_v1_rewrite_wraps(text: &str, wanted: &str) {
    let rewritten = guardrail::policy::compat::rewrite_v1(text);
    assert!(rewritten.contains(wanted), "{rewritten}");
    assert_both_parse(text, &rewritten, false);
}

/// A v0 module as OPA reads it (a line starting with `(` is a new expression) parses, and so does
/// its v0 rewrite: the rego_rewrite fuzz target's invariant.
fn assert_v0_rewrite_parses(text: &str) {
    let as_opa_reads = guardrail::policy::compat::insert_paren_separators(text);
    assert_both_parse(&as_opa_reads, &guardrail::policy::compat::rewrite_v0(text), true);
}

/// Found by `scripts/fuzz run rego_rewrite`: a v0 module (a Gatekeeper template) that imports
/// `rego.v1` is written in v1 syntax, and the `some x in "string"` rewrite appended v0 helper rules
/// to it, so a policy that regorus and OPA read no longer parsed.
#[test]
fn the_rewrites_keep_v1_syntax_in_a_v0_module_that_imports_rego_v1() {
    let text = "package p\nimport rego.v1\nviolation contains {\"msg\": m} if { some c in \"abc\"; m := c }\n";
    let rewritten = guardrail::policy::compat::rewrite_v0(text);
    assert!(rewritten.contains("__gr_iterable(\"abc\")"), "the rewrite applies: {rewritten}");
    assert_both_parse(text, &rewritten, true);
}

/// Found by `scripts/fuzz run rego_rewrite`: a `some … in` whose collection runs over a later one
/// (here through an unterminated string) made the rewrite slice backwards and panic while the
/// policy loaded. Such text is left for regorus to refuse with its own error.
#[test]
fn overlapping_some_in_rewrites_do_not_panic() {
    let text = "package p\nimpor contains m if { some c in \"abc2; m := c }\n(x) := f(x   Cny contains m if { some c in \"abc\"; m := c }\n";
    for rewritten in [guardrail::policy::compat::rewrite_v0(text), guardrail::policy::compat::rewrite_v1(text)] {
        assert!(rewritten.starts_with("package p\nimpor contains m if { some c in __gr_iterable("), "{rewritten}");
    }
    let nested = "package p\nimport rego.v1\nx contains y if { some a in [b | some b in input.xs] ; y := a }\n";
    let rewritten = guardrail::policy::compat::rewrite_v1(nested);
    let mut engine = regorus::Engine::new();
    engine.add_policy("p.rego".into(), rewritten.clone()).unwrap_or_else(|e| panic!("{e}\n{rewritten}"));
}

/// Found by `scripts/fuzz run rego_rewrite`: with nothing between `in` and its collection
/// (`some c in-x`), the rewrite glued `__gr_iterable(` to `in`, and a module regorus parsed did
/// not parse any more.
#[test]
fn a_collection_glued_to_in_still_parses_after_the_rewrite() {
    let text = "package p\nimport rego.v1\nx contains c if { some c in-[1] }\n";
    assert_v1_rewrite_wraps(text, "some c in __gr_iterable(-[1])");
}

/// Found by `scripts/fuzz run rego_rewrite`: regorus's lexer reads a NUL character as the end of
/// the file, so a module parsed with everything after it dropped. guardrail refuses such a text
/// where the NUL is, before regorus sees it.
#[test]
fn a_nul_character_in_rego_is_refused_at_its_place() {
    let text = "package p\nimport rego.v1\nx contains 1 if { true }\n\0\ny contains 2 if { true }\n";
    let err = guardrail::policy::compat::check_source("p.rego", text).unwrap_err();
    assert!(err.starts_with("--> p.rego:4:1\n") && err.contains("NUL character"), "{err}");
}

/// Found by `scripts/fuzz run rego_rewrite`: a collection whose line ends in an operator goes on
/// on the next line; the rewrite closed `__gr_iterable(` at the line break, after the operator.
#[test]
fn a_collection_that_goes_on_after_an_operator_is_wrapped_whole() {
    let text = "package p\nimport rego.v1\nx contains c if { some c in {1, 2} -\n\n\n  {2} }\n";
    assert_v1_rewrite_wraps(text, "some c in __gr_iterable({1, 2} -\n\n\n  {2}) }");
}

/// Found by `scripts/fuzz run rego_rewrite`: regorus reads a line that starts with `:=` as going on
/// from the line before; the split of chained bodies took that line alone for the rule's head and
/// repeated it (`:= f {`), and a module regorus parsed did not parse any more.
#[test]
fn a_head_that_goes_on_from_the_line_before_is_not_repeated() {
    let text = "package p\nviolatimport rego.v0(fx)\n := f{msoserviceAccountName\n} {\n  obj.kind == \"Deployment\"\n#t(un.se0rviceAc.epheeveryContainers[_]\n}\n";
    let rewritten = guardrail::policy::compat::rewrite_v0(text);
    assert_both_parse(text, &rewritten, true);
}

/// Found by `scripts/fuzz run rego_rewrite`: `some some x` gave two overlapping spans to drop, and the
/// rewrite sliced backwards and panicked while the policy loaded.
#[test]
fn overlapping_unused_some_declarations_do_not_panic() {
    let text = "pacget_mekagte k8spoddisru:tionbudgchL[bel] servicddiv { some some has bt allowed to creLte service an{ sopackage locprivileged\n\nviolation[{\"msg\": msg}= {\n  names := [c.name | c := input.rme some has bt allowed to create sbels - l, k7spoddiv { some some has bt allowed to creLte servicddiv { some some has bt allowed to creLte service an{ some some has}\n  count(mitchLabels - l, k7sp { some mose heviewego.v1\nf(x)x)\ndeny colta:= cmmport rege p\ns :=}}}msg}}}}}}}}}}o.v1\nf(x) := f(x)\ndeny colta:= cm := c some ld set: %packapcmmport rase";
    let _ = guardrail::policy::compat::rewrite_v0(text);
    let _ = guardrail::policy::compat::rewrite_v1(text);
    let small = "package p\nx contains y if { some some y; y := [z | some z in input.a] }\n";
    let _ = guardrail::policy::compat::rewrite_v1(small);
}

/// Found by `scripts/fuzz run rego_rewrite`: regorus's parser spent 20 s on `0e11111111` (its time
/// grows with the exponent). guardrail refuses such a literal where it starts, before regorus reads it.
#[test]
fn a_number_literal_with_a_huge_exponent_is_refused_before_parsing() {
    let text = "package kuipackage ioldts := [\n    concat(\", \", [n |0e11111111\u{6}\u{6}11$11K11K111ome7727777777";
    let err = guardrail::policy::compat::check_source("p.rego", text).unwrap_err();
    assert!(err.starts_with("--> p.rego:2:22\n") && err.contains("exponent beyond 400"), "{err}");
}

/// Found by `scripts/fuzz run rego_rewrite`: after a head that ends in an operator
/// (`= 1312000/ { true }`) the `{` is an operand, but the split of chained bodies took it for a body
/// and repeated the head, and a module regorus parsed did not parse any more.
#[test]
fn a_brace_after_an_operator_is_not_a_chained_body() {
    let text = "package k8scontaiontainerrequests\n\nimpori\n\nmissing(obj, field)canonify_cpu(orig) = 1312000/ { true } {` truscontaijerlimits\n*import data{ true } {` true }\n\nget_suscontaijerll";
    assert_v0_rewrite_parses(text);
}

/// Found by `scripts/fuzz run rego_rewrite` (fifth campaign): after `contains` a `{` is the key (a set),
/// and the body follows it; the split of chained bodies took the set for a first body and repeated
/// the head before the real one, and a module regorus parsed did not parse any more.
#[test]
fn a_set_after_contains_is_a_key_not_a_chained_body() {
    let found = "package p\nimport rego.v2\nf(x)\nf(x) := f(x)\ndeny contains {msoserlpec.serviceAccountName\n} {\n  obj.kind == \"DaemonSet\"\n  spec := otainers[_]\n}\n";
    assert_v0_rewrite_parses(found);
    let plain = "package p\nimport future.keywords.contains\ndeny contains {\"a\"} {\n  input.x\n}\n";
    let rewritten = guardrail::policy::compat::rewrite_v0(plain);
    assert!(!rewritten.contains("deny contains {\n"), "no second head: {rewritten}");
    assert_v0_rewrite_parses(plain);
}

/// Found by `scripts/fuzz run rego_rewrite`: a line that starts with `(` at the top level goes on
/// from the line before as regorus reads it, so what follows it is no rule head; the split of
/// chained bodies repeated it as one, and a module regorus parsed did not parse any more.
#[test]
fn a_statement_that_starts_with_a_paren_is_not_a_rule_head() {
    let text = "package p\nallow rego.v0\n(f)x := f{ true\n} {\n  input.kind == \"Pod\"\n}\n";
    assert_v0_rewrite_parses(text);
}

/// Found by `scripts/fuzz run rego_rewrite` (five inputs of 632-977 bytes, 3-5 s each in the fuzz
/// build, 8.5 s to parse one in a debug build): unclosed brackets each in the first element of the
/// one before, under the nesting bound of 13 but each level doubling the parser's attempts. Reduced
/// here (the reduction still took over 300 ms in a debug build); refused before regorus parses it,
/// at the bracket that crosses the bound, and a policy that nests as deep after commas is not.
#[test]
fn brackets_nested_in_first_elements_are_refused_before_parsing() {
    use guardrail::policy::compat::{check_source, MAX_FIRST_NESTING};
    let text = "package p\nr contains m if{ [[--[[[[[[[[[";
    let err = check_source("p.rego", text).unwrap_err();
    let column = "r contains m if{ [[--".len() + MAX_FIRST_NESTING - 1;
    assert!(err.starts_with(&format!("--> p.rego:2:{column}\n")), "{err}");
    assert!(err.contains("first element"), "{err}");
    let after_commas = format!("package p\nr contains m if {{ x := {}1{} }}\n", "[1, ".repeat(12), "]".repeat(12));
    assert_eq!(check_source("p.rego", &after_commas), Ok(()));
    assert_both_parse(&after_commas, &guardrail::policy::compat::rewrite_v1(&after_commas), false);
}

/// Found by `scripts/fuzz run rego_rewrite`: `p = s[p]` at the top level is a rule (its value is
/// `s[p]`), but the rewrite of the self-keyed unification `x = s[x]` (which OPA iterates) turned it
/// into the expression `s[p] == p`, and a module regorus parsed did not parse any more.
#[test]
fn a_top_level_rule_is_not_rewritten_as_a_self_keyed_unification() {
    let text = "package evmiport re\np=air[p]\n";
    assert_both_parse(text, &guardrail::policy::compat::rewrite_v0(text), true);
    let in_body = "package p\nallow {\n  c = cs[c]\n}\n";
    assert!(guardrail::policy::compat::rewrite_v0(in_body).contains("  cs[c] == c\n"));
}

/// Found by `scripts/fuzz run rego_rewrite`: regorus reads a line that starts with `in` (or another
/// binary operator) as going on with the expression on the line before, so the collection of
/// `some c in` runs on; the rewrite closed it at the line break and the module no longer parsed.
#[test]
fn a_collection_that_goes_on_on_the_next_line_is_wrapped_whole() {
    let text = "package p\nimport rego.v1\nm if{some c in \"b\"---c\nin c }\n";
    assert_both_parse(text, &guardrail::policy::compat::rewrite_v1(text), false);
    // But nothing goes on from an empty collection: in v0 `in` can be a name (found next).
    let v0 = "package pfm \ni{some in\n in\ny}\n";
    assert_both_parse(v0, &guardrail::policy::compat::rewrite_v0(v0), true);
}

/// Found by `scripts/fuzz run rego_rewrite` (fifth campaign): a collection such as `-c in` (regorus reads
/// a unary minus's operand with its membership) whose line ends in the keyword `in` goes on on the next
/// non-blank line, as one ending in `-` does; the rewrite closed it after `in` and the module no longer
/// parsed. `input.in` and `input.min` are names, not the keyword.
#[test]
fn a_collection_whose_line_ends_in_the_keyword_in_is_wrapped_whole() {
    let text = "package p\nm if{some c in \"b\"---c\nin \n\nimc }\n";
    assert_both_parse(text, &guardrail::policy::compat::rewrite_v1(text), false);
    let plain = "package p\nimport rego.v1\nm if { some c in -input.a in\n\n  input.b\n  c }\n";
    assert_v1_rewrite_wraps(plain, "__gr_iterable(-input.a in\n\n  input.b)\n");
    for name in ["input.in", "-input.min"] {
        let field = format!("package p\nimport rego.v1\nm if {{ some c in {name}\n  c }}\n");
        assert_v1_rewrite_wraps(&field, &format!("__gr_iterable({name})\n"));
    }
}

/// Found by `scripts/fuzz run rego_rewrite` (fifth campaign): regorus places a token at the line it
/// starts on, so after a raw string that spans lines whatever follows on its last line is a new
/// literal (unless an operator goes on with it); the rewrite wrapped it into the collection of
/// `some c in`, and a module regorus parsed no longer parsed.
#[test]
fn a_collection_ends_after_a_raw_string_that_spans_lines() {
    let found = "package p\nm if { some c in `x\ny` \"c\"-i\nnp }\n";
    assert_both_parse(found, &guardrail::policy::compat::rewrite_v1(found), false);
    let new_literal = "package p\nimport rego.v1\nm if { some c in `a\nb` \"c\" == \"c\"\n  c }\n";
    assert_v1_rewrite_wraps(new_literal, "__gr_iterable(`a\nb`); \"c\" == \"c\"\n");
    let goes_on = "package p\nimport rego.v1\nm if { some c in `a\nb` + \"z\"\n  c }\n";
    assert_v1_rewrite_wraps(goes_on, "__gr_iterable(`a\nb` + \"z\")\n");
    // A string is no ref: `[0]` right after it is a new literal as well.
    let attached = "package p\nimport rego.v1\nm if { some c in `a\nb`[0] == 1\n  c }\n";
    assert_both_parse(attached, &guardrail::policy::compat::rewrite_v1(attached), false);
    // The raw string ends at its backtick, even with a string right after it (found next).
    let glued = "package p\npm if { some c in`\"ac\"--------/package p\npm if { some c in`\"ac\"--- c}\n";
    assert_both_parse(glued, &guardrail::policy::compat::rewrite_v1(glued), false);
    // A backtick inside a quoted string starts no raw string.
    let quoted = "package p\nimport rego.v1\nm if { some c in \"a`b\" + \"x\"\n  c == `y` }\n";
    assert_v1_rewrite_wraps(quoted, "__gr_iterable(\"a`b\" + \"x\")\n");
}

/// Found by hand while checking the raw-string fix (the fuzzer had not produced `with … as`): `with`
/// modifies the whole `some c in` literal, and the rewrite wrapped it into the collection's call.
#[test]
fn a_with_modifier_is_not_part_of_the_collection() {
    for (collection, wrapped) in [
        ("input.x with input as 1\n", "__gr_iterable(input.x) with input as 1\n"),
        ("input.x with input as 1; ", "__gr_iterable(input.x) with input as 1; "),
        ("`a\nb` with input as 1\n", "__gr_iterable(`a\nb`) with input as 1\n"),
        ("`a\nb` + \"x\" with input as 1\n", "__gr_iterable(`a\nb` + \"x\") with input as 1\n"),
        ("input.with\n", "__gr_iterable(input.with)\n"),
    ] {
        let text = format!("package p\nimport rego.v1\nm if {{ some c in {collection} c }}\n");
        assert_v1_rewrite_wraps(&text, wrapped);
    }
}

/// Found by `scripts/fuzz run rego_rewrite` (fifth campaign): a `{` right after a complete operand
/// ends the collection (regorus reads `m if some c in x {…}` as a rule with a second body), and
/// `some in, x` declares `in` where it is a name (v0), so neither may be wrapped.
#[test]
fn a_brace_after_the_collection_and_a_declared_in_are_left_alone() {
    let body = "package p\nm if some c in\"`c\"------i----c {some c in\"`c\"------i----c }\n";
    assert_both_parse(body, &guardrail::policy::compat::rewrite_v1(body), false);
    let declared = "package pfm\ni{some in,\n iy}";
    assert_v0_rewrite_parses(declared);
    assert!(!guardrail::policy::compat::rewrite_v0(declared).contains("__gr_iterable"));
    // A set as the collection is still wrapped.
    let set = "package p\nimport rego.v1\nm if { some c in {1, 2}\n  c }\n";
    assert_v1_rewrite_wraps(set, "__gr_iterable({1, 2})\n");
}

/// Found by `scripts/fuzz run rego_rewrite` (fifth campaign): `|` after the collection is set union,
/// which goes on like any binary operator (the rewrite cut the collection at it), and after a complete
/// operand and a space a name starts what comes next (`m if some u in t m if …`: regorus reads a second
/// rule on the line; the rewrite wrapped it into the call).
#[test]
fn a_union_goes_on_and_a_name_after_the_collection_starts_anew() {
    let union = "package p\nm if{some c in \"b\"--p|\nc-c\nin c }\n";
    assert_both_parse(union, &guardrail::policy::compat::rewrite_v1(union), false);
    let plain = "package p\nimport rego.v1\nm if { some c in input.a | input.b\n  c }\n";
    assert_v1_rewrite_wraps(plain, "__gr_iterable(input.a | input.b)\n");
    let two_rules = "package nt m if some u,n in\tt m if some u,n\n";
    assert_v1_rewrite_wraps(two_rules, "__gr_iterable(t) m if");
}

/// Found by `scripts/fuzz run rego_rewrite` (fifth campaign): `p contains _.k()` with its body on the
/// next line (`if { }`) is no body-less head, but the rewrite moved its key into a body of its own and
/// left the real body dangling.
#[test]
fn a_contains_head_whose_body_is_on_the_next_line_keeps_it() {
    let found = "package p\niromtrepr contains _.k()\n if{ }\n";
    assert_both_parse(found, &guardrail::policy::compat::rewrite_v1(found), false);
    let bodyless = "package p\nimport rego.v1\nvolumes contains input.spec.volumes[_]\n\nq := 1\n";
    assert!(guardrail::policy::compat::rewrite_v1(bodyless).contains("volumes contains __grh0 if"));
}
