//! Parser recovery: a syntax error is reported once, at the right place, and the code around
//! it still counts, so it raises no follow-on errors (undefined names for a `let` whose
//! initialiser broke, a function whose parameter list broke, a `}` taken for the end of the
//! function). Each case lists every error the compiler reports, as `line:col message`.

use molt_compiler::{Options, compile_source};

fn errors(src: &str) -> Vec<String> {
    let opts = Options { version: 1, builtins: vec!["print".into()], ..Options::default() };
    let out = compile_source("t.molt", src, &opts);
    let file = &out.files[0];
    out.diagnostics
        .iter()
        .map(|d| {
            let (line, col) = file.line_col(d.span.0);
            let message = d.message.split(", expected").next().unwrap_or_default();
            format!("{line}:{col} {message}")
        })
        .collect()
}

fn check(src: &str, want: &[&str]) {
    assert_eq!(errors(src), want, "source:\n{src}");
}

#[test]
fn a_broken_operand_keeps_its_statement() {
    check("fn main() {\n    let x = 1 +* 2;\n    print(x);\n}\n", &["2:16 syntax error: unexpected '*'"]);
    check("fn main() {\n    let a = [1, 2,, 3];\n    print(a);\n}\n", &["2:19 syntax error: unexpected ','"]);
    check("fn main() {\n    x = = 2;\n}\n", &["2:9 syntax error: unexpected '='"]);
}

#[test]
fn a_missing_semicolon_ends_its_statement() {
    check("fn main() {\n    while true {\n        break\n    }\n}\n", &["4:5 syntax error: unexpected '}'"]);
    check("fn main() {\n    let x = 1\n    print(x);\n}\n", &["3:5 syntax error: unexpected identifier 'print'"]);
    check("fn main() {\n    print(1)\n}\nfn f() {}\n", &["3:1 syntax error: unexpected '}'"]);
    check("let g = 1\nfn main() { print(g); }\n", &["2:1 syntax error: unexpected 'fn'"]);
}

#[test]
fn a_broken_parameter_list_keeps_the_function() {
    check("fn f(a, b {\n    return a + b;\n}\nfn main() { print(f(1, 2)); }\n", &["1:11 syntax error: unexpected '{'"]);
    check(
        "fn main() {\n    let f = fn(x { return x; };\n    print(f(1));\n}\n",
        &["2:18 syntax error: unexpected '{'"],
    );
}

#[test]
fn a_missing_colon_or_comma_keeps_the_entry() {
    check(
        "fn main() {\n    let m = {\"a\": 1, \"b\" 2};\n    print(m);\n}\n",
        &["2:26 syntax error: unexpected integer 2"],
    );
    check(
        "type T { a, b }\nfn main() {\n    print(T { a 1, b: 2 });\n}\n",
        &["3:17 syntax error: unexpected integer 1"],
    );
    check(
        "type T { a b = 2 }\nfn main() {\n    print(T { a: 1 });\n}\n",
        &["1:12 syntax error: unexpected identifier 'b'"],
    );
}

#[test]
fn fields_and_methods_in_any_order() {
    let src = "type P {\n    x,\n    fn get() { return self.x + self.y; }\n    y = 2,\n    fn twice() { return 2 * self.get(); }\n    z = 3\n}\nfn main() { print(P { x: 1 }.twice()); }\n";
    check(src, &[]);
}

#[test]
fn an_error_before_the_end_of_file_is_kept() {
    // The parser resumed after the first error, then the file ended inside the function.
    check(
        "fn f() {}\nfn broken( {\n",
        &["2:12 syntax error: unexpected '{'", "2:13 syntax error: unexpected end of file"],
    );
}

#[test]
fn errors_in_several_functions_are_all_reported() {
    check(
        "fn a() {\n    let x = 1 +;\n    let y = 2;\n}\nfn b() {\n    let z = );\n}\nfn main() {\n    print(y z);\n}\n",
        &[
            "2:16 syntax error: unexpected ';'",
            "6:13 syntax error: unexpected ')'",
            "9:13 syntax error: unexpected identifier 'z'",
        ],
    );
}
