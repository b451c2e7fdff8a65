//! The markdown templates of `templates/`, compiled into the binary so a deployment is one file.

use minijinja::Environment;

pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_trim_blocks(false);
    for (name, text) in [
        ("comment.md", include_str!("../../templates/comment.md.j2")),
        ("summary.md", include_str!("../../templates/summary.md.j2")),
        ("text.md", include_str!("../../templates/text.md.j2")),
    ] {
        env.add_template(name, text).expect("the bundled templates parse");
    }
    env
}
