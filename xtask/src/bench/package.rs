//! 4. Package size: `crate::lambda::package` (`cargo lambda build --release --arm64`, zipped).

use super::PACKAGE_MAX_BYTES;
use super::report::{Figure, Goal, Section, Unit};
use std::path::Path;

pub(super) fn package(root: &Path, venv: &Path) -> anyhow::Result<Section> {
    let mut section = Section::new("Package size");
    section.commands.push(
        "cargo xtask package   # cargo lambda build --release --arm64 --output-format zip, every function".into(),
    );
    let reports = crate::lambda::package(root, venv)?;
    for report in &reports {
        section.figures.push(Figure::new(
            format!("Package: {} bootstrap.zip ({})", report.function, report.architecture),
            Unit::Bytes,
            vec![report.zip_bytes as f64],
            Some(Goal::AtMost(PACKAGE_MAX_BYTES)),
        ));
    }
    if reports.iter().any(|r| r.architecture != "arm64") {
        section.notes.push("The arm64 standard library could not be installed here, so these are x86-64 zips (the template deploys arm64).".into());
    }
    section.notes.push("One build: a zip's size does not vary between runs of the same commit.".into());
    Ok(section)
}
