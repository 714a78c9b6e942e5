//! Renders `RELIABILITY.md` (at the repository root, or the path given) from the records the
//! reliability suites wrote in their last run (`chimpsync_tests::reliability`).

use anyhow::{Context, Result};
use chimpsync_tests::reliability::{read_records, render, results_dir, RunInfo};

fn command_text(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() -> Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the workspace root")?
        .to_path_buf();
    let target = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("RELIABILITY.md"));
    let dir = results_dir();
    let records = read_records(&dir)?;
    anyhow::ensure!(
        !records.is_empty(),
        "no records in {}: run the suites first",
        dir.display()
    );
    let git = |args: &[&str]| {
        let mut all = vec!["-C", root.to_str().unwrap_or(".")];
        all.extend(args);
        command_text("git", &all)
    };
    let commit = match git(&["rev-parse", "--short", "HEAD"]) {
        Some(head) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{head} plus uncommitted changes")
            } else {
                head
            }
        }
        None => "an unknown commit".into(),
    };
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| format!(", {} GiB memory", kb / 1024 / 1024))
        .unwrap_or_default();
    let postgres = command_text("psql", &["--version"]).unwrap_or_default();
    let info = RunInfo {
        commit,
        machine: format!("{cores} cores{memory}, {postgres}"),
    };
    std::fs::write(&target, render(&records, &info))
        .with_context(|| format!("writing {}", target.display()))?;
    println!(
        "wrote {} from {} records in {}",
        target.display(),
        records.len(),
        dir.display()
    );
    Ok(())
}
