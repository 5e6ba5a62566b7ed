//! The report: each figure with its runs' median and spread and its target from issue 8, a
//! section per part, the machine and the checkout it ran on, and `BENCHMARKS.md` rendered from
//! them (with the hand-written part below [`KEEP_MARKER`] kept).

use super::command_line;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Goal {
    AtMost(f64),
    AtLeast(f64),
    /// On every run (counts that must be zero).
    Exactly(f64),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Unit {
    Nanos,
    Millis,
    PerSecond,
    Kib,
    Bytes,
    Count,
    /// A ratio of two figures ("times").
    Ratio,
    Cores,
    /// US dollars.
    Usd,
    /// A count or a mean, with two decimals.
    Decimal,
}

pub(super) fn format_value(unit: Unit, value: f64) -> String {
    match unit {
        Unit::Nanos if value >= 1_000.0 => format!("{:.2} µs", value / 1_000.0),
        Unit::Nanos => format!("{value:.0} ns"),
        Unit::Millis if value < 1.0 => format!("{value:.3} ms"),
        Unit::Millis => format!("{value:.2} ms"),
        Unit::PerSecond => format!("{value:.0}/s"),
        Unit::Kib => format!("{:.1} MiB", value / 1024.0),
        Unit::Bytes => format!("{:.2} MB ({value:.0} B)", value / 1_000_000.0),
        Unit::Count => format!("{value:.0}"),
        Unit::Ratio => format!("{value:.1}×"),
        Unit::Cores => format!("{value:.2} cores"),
        Unit::Usd => format!("${value:.2}"),
        Unit::Decimal => format!("{value:.2}"),
    }
}

fn format_goal(unit: Unit, goal: Goal) -> String {
    match goal {
        Goal::AtMost(value) => format!("≤ {}", format_value(unit, value)),
        Goal::AtLeast(value) => format!("≥ {}", format_value(unit, value)),
        Goal::Exactly(value) => format!("= {} (every run)", format_value(unit, value)),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Spread {
    pub(super) median: f64,
    pub(super) min: f64,
    pub(super) max: f64,
}

pub(super) fn spread(values: &[f64]) -> Option<Spread> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    let median = if sorted.len() % 2 == 1 { sorted[middle] } else { (sorted[middle - 1] + sorted[middle]) / 2.0 };
    Some(Spread { median, min: sorted[0], max: sorted[sorted.len() - 1] })
}

/// The value at `quantile` (0..=1) of sorted `values`, nearest rank.
pub(super) fn percentile(sorted: &[u64], quantile: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[derive(Debug, Clone)]
pub(super) struct Figure {
    pub(super) name: String,
    pub(super) unit: Unit,
    pub(super) values: Vec<f64>,
    pub(super) goal: Option<Goal>,
}

impl Figure {
    pub(super) fn new(name: impl Into<String>, unit: Unit, values: Vec<f64>, goal: Option<Goal>) -> Self {
        Self { name: name.into(), unit, values, goal }
    }

    /// `None` without a goal; whether the goal is met otherwise (no value: not met).
    fn met(&self) -> Option<bool> {
        let goal = self.goal?;
        let Some(spread) = spread(&self.values) else {
            return Some(false);
        };
        Some(match goal {
            Goal::AtMost(limit) => spread.median <= limit,
            Goal::AtLeast(floor) => spread.median >= floor,
            Goal::Exactly(wanted) => self.values.iter().all(|v| (*v - wanted).abs() < f64::EPSILON),
        })
    }

    fn row(&self) -> String {
        let (median, range) = match spread(&self.values) {
            Some(s) if self.values.len() > 1 => (
                format_value(self.unit, s.median),
                format!("{} – {}", format_value(self.unit, s.min), format_value(self.unit, s.max)),
            ),
            Some(s) => (format_value(self.unit, s.median), "(one run)".to_owned()),
            None => ("not measured".to_owned(), String::new()),
        };
        let goal = self.goal.map(|g| format_goal(self.unit, g)).unwrap_or_default();
        let verdict = match self.met() {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "",
        };
        format!("| {} | {median} | {range} | {} | {goal} | {verdict} |", self.name, self.values.len())
    }
}

#[derive(Debug, Default)]
pub(super) struct Section {
    pub(super) title: String,
    pub(super) commands: Vec<String>,
    pub(super) figures: Vec<Figure>,
    pub(super) notes: Vec<String>,
    /// Why the section (or part of it) could not be measured.
    pub(super) failures: Vec<String>,
}

impl Section {
    pub(super) fn new(title: &str) -> Self {
        Self { title: title.to_owned(), ..Self::default() }
    }
}

/// What the machine and the checkout are.
pub(crate) struct Machine {
    pub(crate) cores: usize,
    pub(crate) cpu: String,
    pub(crate) memory: String,
    pub(crate) kernel: String,
    pub(crate) rustc: String,
    pub(crate) commit: String,
    pub(crate) dirty: bool,
    pub(crate) date: String,
}

impl Machine {
    /// The opening of a generated report: what wrote it (`command`, in `source`), when, and on
    /// which commit. The machine line follows, in each report's own form.
    pub(crate) fn provenance(&self, command: &str, source: &str) -> String {
        format!(
            "Written by `{command}` ({source}) on {}. Re-run it to refresh every figure; the part below the marker \
             at the end is kept.\n\n- commit: `{}`{}\n",
            self.date,
            self.commit,
            if self.dirty { " with uncommitted changes" } else { "" }
        )
    }
}

pub(crate) fn machine(root: &Path) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|line| {
            line.strip_prefix("model name").and_then(|rest| rest.split_once(':')).map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:").map(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok()))
        .flatten()
        .map(|kib| format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".to_owned());
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(root)
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
    };
    Machine {
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        cpu,
        memory,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|k| k.trim().to_owned()).unwrap_or_default(),
        rustc: command_line("rustc", &["-V"]).unwrap_or_else(|| "unknown".to_owned()),
        commit: git(&["rev-parse", "--short", "HEAD"])
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned()),
        dirty: git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|o| !o.stdout.is_empty()),
        date: command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default(),
    }
}

/// Marks where the hand-written part of BENCHMARKS.md starts; everything from it on is kept.
pub(super) const KEEP_MARKER: &str = "<!-- cargo xtask bench keeps everything below this line -->";

pub(super) fn render(machine: &Machine, sections: &[Section], kept: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    md.push_str(&machine.provenance("cargo xtask bench", "xtask/src/bench.rs"));
    let _ = writeln!(
        md,
        "- machine: {} cores, {}, {} RAM, Linux {}",
        machine.cores, machine.cpu, machine.memory, machine.kernel
    );
    let _ = writeln!(
        md,
        "- toolchain: {}; release profile: fat LTO, one codegen unit, stripped, panic = unwind, dependencies at opt-level \"s\" but for the event, JSON and runtime-API path (Cargo.toml)",
        machine.rustc
    );
    let _ = writeln!(
        md,
        "- each figure: the median of its runs, with the smallest and largest run; targets from issue 8 are checked on the median, and counts that must be zero on every run\n"
    );

    let _ = writeln!(md, "## Summary\n");
    let _ = writeln!(md, "| figure | median | spread (min – max) | runs | target | |");
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for section in sections {
        for figure in section.figures.iter().filter(|f| f.goal.is_some()) {
            let _ = writeln!(md, "{}", figure.row());
        }
        for failure in &section.failures {
            let _ = writeln!(
                md,
                "| {}: not measured ({}) | | | | | **missed** |",
                section.title,
                first_line(failure).replace('|', "/")
            );
        }
    }
    let _ = writeln!(md);

    for section in sections {
        let _ = writeln!(md, "## {}\n", section.title);
        if !section.commands.is_empty() {
            let _ = writeln!(md, "```sh");
            for command in &section.commands {
                let _ = writeln!(md, "{command}");
            }
            let _ = writeln!(md, "```\n");
        }
        if !section.figures.is_empty() {
            let _ = writeln!(md, "| figure | median | spread (min – max) | runs | target | |");
            let _ = writeln!(md, "|---|---|---|---|---|---|");
            for figure in &section.figures {
                let _ = writeln!(md, "{}", figure.row());
            }
            let _ = writeln!(md);
        }
        for failure in &section.failures {
            let _ = writeln!(md, "**Not measured:** {}\n", failure.replace('\n', " "));
        }
        for note in &section.notes {
            // A note that is a table stands alone; the others are a list.
            if note.starts_with('|') {
                let _ = writeln!(md, "{note}\n");
            } else {
                let _ = writeln!(md, "- {note}");
            }
        }
        if !section.notes.is_empty() {
            let _ = writeln!(md);
        }
    }
    let _ = writeln!(md, "{KEEP_MARKER}");
    md.push_str(kept);
    md
}

pub(super) fn missed(sections: &[Section]) -> Vec<String> {
    let mut missed = Vec::new();
    for section in sections {
        for figure in &section.figures {
            if figure.met() == Some(false) {
                let value = spread(&figure.values)
                    .map(|s| format_value(figure.unit, s.median))
                    .unwrap_or_else(|| "not measured".into());
                let goal = figure.goal.map(|g| format_goal(figure.unit, g)).unwrap_or_default();
                missed.push(format!("{}: {value} (target {goal})", figure.name));
            }
        }
        for failure in &section.failures {
            missed.push(format!("{}: not measured ({})", section.title, first_line(failure)));
        }
    }
    missed
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{Figure, Goal, Spread, Unit, percentile, spread};

    #[test]
    fn spread_is_median_min_max() {
        assert_eq!(spread(&[3.0, 1.0, 2.0]), Some(Spread { median: 2.0, min: 1.0, max: 3.0 }));
        assert_eq!(spread(&[4.0, 1.0, 2.0, 3.0]).map(|s| s.median), Some(2.5));
        assert_eq!(spread(&[]), None);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 0.5), 50);
        assert_eq!(percentile(&values, 0.99), 99);
        assert_eq!(percentile(&values, 1.0), 100);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn goals_are_checked_on_the_median_and_zero_counts_on_every_run() {
        let figure = |values: Vec<f64>, goal| Figure::new("f", Unit::Millis, values, Some(goal));
        assert_eq!(figure(vec![1.0, 9.0, 2.0], Goal::AtMost(5.0)).met(), Some(true));
        assert_eq!(figure(vec![6.0, 9.0, 2.0], Goal::AtMost(5.0)).met(), Some(false));
        assert_eq!(figure(vec![0.0, 1.0, 0.0], Goal::Exactly(0.0)).met(), Some(false));
        assert_eq!(figure(vec![], Goal::AtLeast(1.0)).met(), Some(false));
        assert_eq!(Figure::new("f", Unit::Millis, vec![1.0], None).met(), None);
    }
}
