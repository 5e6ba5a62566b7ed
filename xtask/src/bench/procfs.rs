//! What a process has used, from /proc: CPU time (per thread in nanoseconds, or utime + stime in
//! clock ticks) and peak resident set size.

use super::command_line;
use anyhow::Context;

/// CPU time of the process's live threads, in nanoseconds (the first field of each
/// `/proc/<pid>/task/<tid>/schedstat`): fine enough for an init of a few milliseconds, which
/// `stat`'s 10 ms ticks are not.
pub(super) fn cpu_nanos(pid: &str) -> anyhow::Result<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).with_context(|| format!("reading /proc/{pid}/task"))? {
        let stat = std::fs::read_to_string(task?.path().join("schedstat")).unwrap_or_default();
        total = total.saturating_add(stat.split_whitespace().next().and_then(|ns| ns.parse::<u64>().ok()).unwrap_or(0));
    }
    Ok(total)
}

/// utime + stime of the process (all its threads, live and exited), in clock ticks.
pub(super) fn cpu_ticks(pid: &str) -> anyhow::Result<u64> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("reading /proc/{pid}/stat"))?;
    parse_cpu_ticks(&stat).with_context(|| format!("parsing /proc/{pid}/stat"))
}

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // Fields after the command name (which may contain spaces) start at field 3, `state`;
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

pub(super) fn ticks_per_second() -> f64 {
    command_line("getconf", &["CLK_TCK"]).and_then(|t| t.parse::<f64>().ok()).unwrap_or(100.0)
}

/// Peak resident set size (VmHWM) in KiB.
pub(super) fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    parse_vm_hwm(&status).context("no VmHWM in /proc/<pid>/status")
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The machine's CPU time so far, all cores, in clock ticks: (total, of it stolen by the
/// hypervisor), from the `cpu` line of /proc/stat.
pub(super) fn machine_ticks() -> Option<(u64, u64)> {
    parse_machine_ticks(&std::fs::read_to_string("/proc/stat").ok()?)
}

fn parse_machine_ticks(stat: &str) -> Option<(u64, u64)> {
    // user nice system idle iowait irq softirq steal (guest time is already in user and nice).
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    Some((fields.iter().sum(), *fields.get(7)?))
}

#[cfg(test)]
mod tests {
    use super::{parse_cpu_ticks, parse_machine_ticks, parse_vm_hwm};

    #[test]
    fn the_machine_line_gives_total_and_steal() {
        let stat = "cpu  100 10 20 800 5 0 5 60 7 0\ncpu0 50 5 10 400 2 0 2 30 3 0\n";
        assert_eq!(parse_machine_ticks(stat), Some((1000, 60)));
        assert_eq!(parse_machine_ticks("intr 1 2 3\n"), None);
    }

    #[test]
    fn proc_files_are_parsed() {
        let stat = "1234 (tokio runtime) S 1 1234 1234 0 -1 4194560 500 0 0 0 71 29 0 0 20 0 3 0 100 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(100));
        assert_eq!(parse_vm_hwm("Name:\tx\nVmHWM:\t    8192 kB\nVmRSS:\t 100 kB\n"), Some(8192));
    }
}
