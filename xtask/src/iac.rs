//! Infrastructure-as-code checks of `infra/template.yaml`, run by `cargo xtask test`:
//!
//! 1. `cfn-lint infra/template.yaml` must print nothing (no error, warning or informational match),
//! 2. `checkov -f infra/template.yaml --framework cloudformation --skip-download --quiet --compact`
//!    must report no failed check (and must have run some checks: checkov skips a file it cannot
//!    parse without failing),
//! 3. `python infra/check_template.py infra/template.yaml` (the gateway's own rules) and its
//!    `--self-test` (each rule catches a deliberate break) must pass.
//!
//! The tools run from the xtask venv; [`REQUIREMENTS`] are the pins to install there.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// PyPI requirements of these checks, pinned. cfn-lint 1.53.x still validates SAM resources through
/// the SAM translator (later 1.5x releases check them only against a loose SAM schema, missing
/// e.g. an unknown Runtime or Architectures value); `aws-sam-translator` is listed because
/// cfn-lint does not transform SAM templates without it. checkov and moto resolve together with
/// these (boto3 is held at checkov's pin).
pub const REQUIREMENTS: [&str; 3] = ["cfn-lint==1.53.3", "aws-sam-translator==1.115.0", "checkov==3.3.30"];

/// The template, relative to the repository root.
pub const TEMPLATE: &str = "infra/template.yaml";
/// The gateway's own rules, relative to the repository root.
pub const CHECKER: &str = "infra/check_template.py";

/// Runs the three checks; fails naming the tool whose check failed, with its output.
pub fn check(venv_python: &Path, repo_root: &Path) -> anyhow::Result<()> {
    let template = repo_root.join(TEMPLATE);
    if !template.is_file() {
        bail!("iac: {} not found", template.display());
    }
    let bin = venv_python.parent().map(Path::to_path_buf).unwrap_or_default();

    // The SAM translator must be importable, or cfn-lint lints the Serverless resources loosely.
    let probe = run(Command::new(venv_python).args(["-c", "import samtranslator"]), repo_root, "python")?;
    if !probe.status.success() {
        bail!(
            "iac: cfn-lint needs the SAM translator, which the venv lacks: install {} in the venv\n{}",
            REQUIREMENTS.join(" "),
            text(&probe)
        );
    }

    let cfn_lint = run(Command::new(script(&bin, "cfn-lint")).arg("--").arg(TEMPLATE), repo_root, "cfn-lint")?;
    let said = text(&cfn_lint);
    if !cfn_lint.status.success() || !said.trim().is_empty() {
        bail!("iac: cfn-lint reported problems in {TEMPLATE} ({}):\n{said}", cfn_lint.status);
    }
    println!("iac: cfn-lint {TEMPLATE}: clean");

    let checkov = run(
        // No update check against PyPI, no download of guidelines: offline and quicker.
        Command::new(script(&bin, "checkov"))
            .env("CKV_SKIP_PACKAGE_UPDATE_CHECK", "true")
            .env("BC_SKIP_MAPPING", "TRUE")
            .args(["-f", TEMPLATE, "--framework", "cloudformation", "--skip-download", "--quiet", "--compact"]),
        repo_root,
        "checkov",
    )?;
    let said = text(&checkov);
    let summary = checkov_summary(&said);
    match summary {
        Some(Summary { failed: 0, passed, .. }) if checkov.status.success() && passed > 0 => {
            println!(
                "iac: checkov {TEMPLATE}: {}",
                said.lines().find(|l| l.contains("Passed checks")).unwrap_or("").trim()
            );
        }
        Some(Summary { passed: 0, failed: 0, .. }) | None if checkov.status.success() => {
            bail!("iac: checkov ran no check on {TEMPLATE} (could it parse the template?):\n{said}");
        }
        _ => bail!("iac: checkov reported failed checks in {TEMPLATE} ({}):\n{said}", checkov.status),
    }

    for extra in [None, Some("--self-test")] {
        let mut command = Command::new(venv_python);
        command.arg(CHECKER);
        if let Some(flag) = extra {
            command.arg(flag);
        }
        let checked = run(command.arg(TEMPLATE), repo_root, CHECKER)?;
        let said = text(&checked);
        if !checked.status.success() {
            bail!(
                "iac: {CHECKER}{} failed ({}):\n{said}",
                extra.map(|f| format!(" {f}")).unwrap_or_default(),
                checked.status
            );
        }
        print!("iac: {said}");
    }
    Ok(())
}

/// A console script of the venv (`bin/NAME`, or `Scripts\NAME.exe` on Windows).
fn script(bin: &Path, name: &str) -> PathBuf {
    if cfg!(windows) { bin.join(format!("{name}.exe")) } else { bin.join(name) }
}

fn run(command: &mut Command, root: &Path, tool: &str) -> anyhow::Result<Output> {
    command.current_dir(root).env("PYTHONDONTWRITEBYTECODE", "1").output().with_context(|| {
        format!(
            "iac: could not run {tool} ({:?}); is it installed in the xtask venv? ({})",
            command.get_program(),
            REQUIREMENTS.join(" ")
        )
    })
}

fn text(output: &Output) -> String {
    let mut all = String::from_utf8_lossy(&output.stdout).into_owned();
    let errors = String::from_utf8_lossy(&output.stderr);
    if !errors.trim().is_empty() {
        if !all.is_empty() && !all.ends_with('\n') {
            all.push('\n');
        }
        all.push_str(&errors);
    }
    all
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Summary {
    passed: u64,
    failed: u64,
    skipped: u64,
}

/// Reads checkov's "Passed checks: N, Failed checks: N, Skipped checks: N" line (summed over
/// frameworks, should it print several).
fn checkov_summary(output: &str) -> Option<Summary> {
    let mut total: Option<Summary> = None;
    for line in output.lines().filter(|line| line.contains("Passed checks:")) {
        let count = |label: &str| -> Option<u64> {
            let rest = &line[line.find(label)? + label.len()..];
            rest.trim_start().split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        };
        let found = Summary {
            passed: count("Passed checks:")?,
            failed: count("Failed checks:")?,
            skipped: count("Skipped checks:").unwrap_or(0),
        };
        let sum = total.get_or_insert(Summary { passed: 0, failed: 0, skipped: 0 });
        sum.passed += found.passed;
        sum.failed += found.failed;
        sum.skipped += found.skipped;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_checkov_summaries() {
        let clean = "cloudformation scan results:\n\nPassed checks: 97, Failed checks: 0, Skipped checks: 10\n\n";
        assert_eq!(checkov_summary(clean), Some(Summary { passed: 97, failed: 0, skipped: 10 }));
        let failed = "cloudformation scan results:\n\nPassed checks: 95, Failed checks: 2, Skipped checks: 10\n\nCheck: CKV_AWS_27: ...";
        assert_eq!(checkov_summary(failed).map(|s| s.failed), Some(2));
        assert_eq!(checkov_summary(""), None);
    }

    #[test]
    fn pins_are_exact() {
        assert!(REQUIREMENTS.iter().all(|line| line.contains("==")));
    }
}
