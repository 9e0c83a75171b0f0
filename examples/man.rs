//! Writes the man pages into the directory given as the first argument (default `target/man`),
//! each generated from what it documents, so nothing is written twice:
//!
//! - `scramd.8` from the command line's definition (`scram::cli`, through clap_mangen) and the exit
//!   codes (`scram::exit::Exit`);
//! - `scram.toml.5` from the example configuration `packaging/scram.toml`, whose comments are the
//!   configuration's reference (a test holds it to list every key `check-config` prints).
//!
//! `deploy/dev.sh deb` runs it and packs the pages, gzipped, into the Debian package.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::CommandFactory;
use scram::cli::Cli;
use scram::exit::Exit;

const EXAMPLE: &str = include_str!("../packaging/scram.toml");

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/man".into()),
    );
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("scramd.8"), scramd_8()?)?;
    std::fs::write(dir.join("scram.toml.5"), scram_toml_5())?;
    Ok(())
}

/// Escapes text for roff: backslashes, and a leading `.` or `'` that would read as a request.
fn roff(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

fn scramd_8() -> std::io::Result<Vec<u8>> {
    let cmd = Cli::command();
    let man = clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("System Administration")
        .source(format!("scram {}", env!("CARGO_PKG_VERSION")));
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    let mut page = String::new();
    page.push_str(".SH COMMANDS\n");
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let mut usage = format!("scramd {}", sub.get_name());
        for arg in sub.get_arguments() {
            let value = arg
                .get_value_names()
                .map(|v| v.join(" "))
                .unwrap_or_else(|| arg.get_id().to_string().to_uppercase());
            let many = matches!(arg.get_action(), clap::ArgAction::Append);
            let part = match arg.get_long() {
                Some(long) => format!("--{long} {value}"),
                None if many => format!("{value}..."),
                None => value,
            };
            if arg.is_required_set() {
                usage.push_str(&format!(" {part}"));
            } else {
                usage.push_str(&format!(" [{part}]"));
            }
        }
        let _ = writeln!(page, ".SS \"{}\"", roff(&usage));
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            let _ = writeln!(page, "{}", roff(&about.to_string()));
        }
        for arg in sub.get_arguments() {
            let value = arg
                .get_value_names()
                .map(|v| v.join(" "))
                .unwrap_or_default();
            let name = match arg.get_long() {
                Some(long) => format!("\\fB\\-\\-{}\\fR \\fI{}\\fR", roff(long), roff(&value)),
                None => format!("\\fI{}\\fR", roff(&value)),
            };
            let help = arg
                .get_long_help()
                .or(arg.get_help())
                .map(|h| h.to_string())
                .unwrap_or_default();
            let _ = writeln!(page, ".TP\n{name}\n{}", roff(&help));
        }
    }
    page.push_str(".SH \"EXIT STATUS\"\n");
    for exit in Exit::ALL {
        let _ = writeln!(page, ".TP\n.B {}\n{}", exit as u8, roff(exit.meaning()));
    }
    page.push_str(concat!(
        ".SH FILES\n",
        ".TP\n.I /etc/scram/scram.toml\nThe configuration; see \\fBscram.toml\\fR(5).\n",
        ".TP\n.I /usr/lib/systemd/system/scramd.service\n",
        "The hardened unit; \\fBsystemctl reload scramd\\fR applies what can change live.\n",
        ".TP\n.I /var/log/scram/\n",
        "Where the EVE alert file belongs (mode 0640, group adm).\n",
        ".SH \"SEE ALSO\"\n",
        "\\fBscram.toml\\fR(5), \\fBjournalctl\\fR(1), \\fBsystemd.exec\\fR(5), ",
        "/usr/share/doc/scram/README.md\n",
    ));
    out.extend_from_slice(page.as_bytes());
    Ok(out)
}

/// One block of the example file: a section header, a key (set or shown commented out) with the
/// comment lines above it, or comment lines with no key after them.
enum Item<'a> {
    Section(&'a str),
    Key {
        key: &'a str,
        value: &'a str,
        set: bool,
        text: Vec<&'a str>,
    },
    Prose(Vec<&'a str>),
}

/// A line `key = value` or `# key = value`: the key, the value, and whether it is set.
fn key_line(line: &str) -> Option<(&str, &str, bool)> {
    let (body, set) = match line.strip_prefix("# ") {
        Some(rest) => (rest, false),
        None => (line, true),
    };
    let (key, value) = body.split_once(" = ")?;
    // A sentence that wraps before `key = value.` is prose, not a key shown commented out.
    let is_key = !key.is_empty()
        && !value.ends_with('.')
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    is_key.then_some((key, value, set))
}

fn items(text: &str) -> Vec<Item<'_>> {
    let mut items = Vec::new();
    let mut comment: Vec<&str> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if !comment.is_empty() {
                items.push(Item::Prose(std::mem::take(&mut comment)));
            }
            items.push(Item::Section(section));
        } else if let Some((key, value, set)) = key_line(line) {
            items.push(Item::Key {
                key,
                value,
                set,
                text: std::mem::take(&mut comment),
            });
        } else if let Some(c) = line.strip_prefix('#') {
            comment.push(c.trim_start());
        } else if line.is_empty() && !comment.is_empty() {
            items.push(Item::Prose(std::mem::take(&mut comment)));
        }
    }
    if !comment.is_empty() {
        items.push(Item::Prose(comment));
    }
    items
}

fn scram_toml_5() -> String {
    let mut page = format!(
        ".TH SCRAM.TOML 5 \"\" \"scram {}\" \"File Formats\"\n\
         .SH NAME\nscram.toml \\- configuration of the scram network defense daemon\n\
         .SH SYNOPSIS\n/etc/scram/scram.toml\n.SH DESCRIPTION\n",
        env!("CARGO_PKG_VERSION")
    );
    let mut in_section = false;
    // The file's first line is its title, which the page has.
    let body = EXAMPLE.split_once('\n').map_or(EXAMPLE, |(_, rest)| rest);
    for item in items(body) {
        match item {
            Item::Section(name) => {
                if !in_section {
                    page.push_str(".SH SECTIONS\n");
                    in_section = true;
                }
                let _ = writeln!(page, ".SS \"[{}]\"", roff(name));
            }
            Item::Key {
                key,
                value,
                set,
                text,
            } => {
                let shown = if set {
                    format!("\\fB{}\\fR = {}", roff(key), roff(value))
                } else {
                    format!("\\fB{}\\fR (unset; e.g. {})", roff(key), roff(value))
                };
                let _ = writeln!(page, ".TP\n{shown}");
                for line in text {
                    let _ = writeln!(page, "{}", roff(line));
                }
            }
            Item::Prose(text) => {
                page.push_str(if in_section { ".IP\n" } else { ".PP\n" });
                for line in text {
                    let _ = writeln!(page, "{}", roff(line));
                }
            }
        }
    }
    page.push_str(concat!(
        ".SH \"SEE ALSO\"\n",
        "\\fBscramd\\fR(8); \\fBscramd check\\-config\\fR prints the effective configuration ",
        "and which keys a reload applies\n",
    ));
    page
}
