//! `d1ops env binding ENV [--format toml|json|env]`: prints the engine's [`Binding`] as
//! wrangler's `[[d1_databases]]` block, a JSON object or shell assignments. Values come from
//! config and Cloudflare, so each is quoted for its format and escaped with `output::safe`.
use super::args::EnvCommand;
use super::output::safe;
use super::{Cli, Command, exit, print_json};
use crate::engine::{Binding, Engine};

pub(super) fn run(cli: &Cli, cmd: &Command, engine: &Engine) -> anyhow::Result<i32> {
    let Command::Env {
        command: EnvCommand::Binding { env, format },
    } = cmd
    else {
        anyhow::bail!("internal error: {cmd:?} reached the wrong handler");
    };
    let binding = engine.binding(env)?;
    let format = if cli.json { "json" } else { format.as_str() };
    match format {
        "json" => print_json(&binding)?,
        "env" => print!("{}", env_lines(&binding)),
        _ => print!("{}", toml_block(&binding)),
    }
    Ok(exit::OK)
}

/// Shell assignments (`D1OPS_DATABASE='…'`), single-quoted.
fn env_lines(b: &Binding) -> String {
    let mut pairs = vec![
        ("D1OPS_DATABASE", &b.database),
        ("D1OPS_DATABASE_NAME", &b.database_name),
        ("D1OPS_BINDING", &b.binding),
    ];
    if let Some(url) = &b.d1_url {
        pairs.push(("D1OPS_D1_URL", url));
    }
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={}\n", safe(&shell_quote(v))))
        .collect()
}

/// Wrangler's `[[d1_databases]]` entry; locally preceded by comments naming the `serve` URL
/// and the file.
fn toml_block(b: &Binding) -> String {
    let mut out = String::new();
    if let Some(url) = &b.d1_url {
        out.push_str(&format!(
            "# {} on the local backend: run `d1ops serve`, then send D1 REST calls to\n",
            safe(&b.env)
        ));
        out.push_str(&format!("#   {}\n", safe(url)));
        out.push_str(&format!("# database file: {}\n", safe(&b.database)));
    }
    out.push_str("[[d1_databases]]\n");
    for (k, v) in [
        ("binding", &b.binding),
        ("database_name", &b.database_name),
        ("database_id", &b.database_id),
    ] {
        out.push_str(&format!("{k} = {}\n", safe(&toml_quote(v))));
    }
    out
}

fn toml_quote(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

fn shell_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn quoting() {
        assert_eq!(super::toml_quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(super::shell_quote("it's"), r"'it'\''s'");
    }
}
