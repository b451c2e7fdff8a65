//! Where the reports of `check` go: several formats in one run (`--format human --format
//! sarif=out.sarif`), `--output FILE` for the one without a file of its own, colours, `--quiet`,
//! `--fail-on`. Every option value is checked by clap: an unknown one is a usage error (exit 2).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::builder::{PossibleValue, TypedValueParser};
use clap::ValueEnum;

use crate::findings::Severity;
use crate::report::Format;

#[derive(clap::Args, Clone, Debug)]
pub struct OutputArgs {
    /// Report format, repeatable: FORMAT or FORMAT=FILE, FORMAT one of human, json, sarif, junit,
    /// github, gitlab. Formats without FILE go to --output, else to standard output (one of them).
    #[arg(long, short = 'f', value_name = "FORMAT[=FILE]", value_parser = FormatTargetParser, default_value = "human")]
    pub format: Vec<FormatTarget>,
    /// Write the report to FILE instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Colours in the human report on a terminal.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Print only what fails the run (findings at or above --fail-on, and errors), nothing when it
    /// passes. Reports written to files stay complete.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// The least severe finding that fails the run (exit 1); `never`: findings never do (errors still
    /// exit 2).
    #[arg(long, value_enum, default_value_t = FailOn::Deny)]
    pub fail_on: FailOn,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    Deny,
    Warn,
    Info,
    Never,
}

impl FailOn {
    pub fn least(self) -> Option<Severity> {
        match self {
            FailOn::Deny => Some(Severity::Deny),
            FailOn::Warn => Some(Severity::Warn),
            FailOn::Info => Some(Severity::Info),
            FailOn::Never => None,
        }
    }
}

/// One `--format` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatTarget {
    pub format: Format,
    pub file: Option<PathBuf>,
}

/// Parses `FORMAT[=FILE]`, with the format names as possible values (for help and completions).
#[derive(Clone)]
pub struct FormatTargetParser;

impl TypedValueParser for FormatTargetParser {
    type Value = FormatTarget;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<FormatTarget, clap::Error> {
        let text = value.to_string_lossy();
        let (name, file) = match text.split_once('=') {
            Some((name, file)) => (name, Some(file)),
            None => (text.as_ref(), None),
        };
        let format = Format::from_str(name, true).map_err(|_| {
            let mut e = clap::Error::new(clap::error::ErrorKind::InvalidValue).with_cmd(cmd);
            use clap::error::{ContextKind, ContextValue};
            e.insert(ContextKind::InvalidArg, ContextValue::String(arg.map(|a| a.to_string()).unwrap_or_default()));
            e.insert(ContextKind::InvalidValue, ContextValue::String(name.to_string()));
            e.insert(
                ContextKind::ValidValue,
                ContextValue::Strings(
                    Format::value_variants()
                        .iter()
                        .filter_map(|v| v.to_possible_value())
                        .map(|p| p.get_name().to_string())
                        .collect(),
                ),
            );
            e
        })?;
        match file {
            Some("") => Err(clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                format!("--format {name}=: the file name is missing\n"),
            )
            .with_cmd(cmd)),
            _ => Ok(FormatTarget { format, file: file.map(PathBuf::from) }),
        }
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(Format::value_variants().iter().filter_map(|v| v.to_possible_value())))
    }
}

/// Where one report goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    Stdout,
    File(PathBuf),
}

/// Every report of a run and where it goes.
#[derive(Clone, Debug)]
pub struct Plan {
    pub reports: Vec<(Format, Destination)>,
    pub color: bool,
}

impl Plan {
    /// Checks that no two reports share a destination.
    pub fn new(args: &OutputArgs) -> Result<Plan, String> {
        let mut reports: Vec<(Format, Destination)> = Vec::new();
        for target in &args.format {
            let destination = match (&target.file, &args.output) {
                (Some(file), _) => Destination::File(file.clone()),
                (None, Some(file)) => Destination::File(file.clone()),
                (None, None) => Destination::Stdout,
            };
            if let Some((other, _)) = reports.iter().find(|(_, d)| *d == destination) {
                let place = match &destination {
                    Destination::Stdout => "standard output".to_string(),
                    Destination::File(f) => f.display().to_string(),
                };
                return Err(format!(
                    "--format {} and --format {} would both write to {place}: give one a file of its own (--format {}=FILE)",
                    name(*other),
                    name(target.format),
                    name(target.format)
                ));
            }
            reports.push((target.format, destination));
        }
        let human_on_stdout = reports.iter().any(|(f, d)| *f == Format::Human && *d == Destination::Stdout);
        let color = human_on_stdout
            && match args.color {
                ColorChoice::Always => true,
                ColorChoice::Never => false,
                ColorChoice::Auto => {
                    std::io::stdout().is_terminal()
                        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                        && std::env::var("TERM").map_or(true, |t| t != "dumb")
                }
            };
        Ok(Plan { reports, color })
    }

    /// Whether the human report goes to standard output (then errors are not repeated in it).
    pub fn human_on_stdout(&self) -> bool {
        self.reports.iter().any(|(f, d)| *f == Format::Human && *d == Destination::Stdout)
    }
}

pub fn name(format: Format) -> String {
    format.to_possible_value().map(|p| p.get_name().to_string()).unwrap_or_default()
}

/// Writes `text` where it goes. A report that cannot be written is an error the caller reports.
pub fn write(destination: &Destination, text: &str) -> Result<(), String> {
    match destination {
        Destination::Stdout => {
            let mut out = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth a message.
            let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
            Ok(())
        }
        Destination::File(path) => write_file(path, text),
    }
}

pub fn write_file(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
