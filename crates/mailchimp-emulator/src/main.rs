//! `mailchimp-emulator`: serves the emulated Mailchimp Marketing API (see the library docs).

use std::os::unix::process::CommandExt;
use std::process::Command;

/// mimalloc: the emulator parses and builds JSON for every member of every batch.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's settings for this process, as the environment variables mimalloc reads once, when
/// the process starts (so they cannot be set from `main`; the binary re-executes itself once
/// with the ones not already set). Each batch answer is a fresh buffer of about half a MiB, and
/// the emulator's memory only grows (it keeps every member), so:
/// - `MIMALLOC_ALLOW_THP=0`: on a machine with transparent huge pages `always`, every fresh
///   region would be faulted in as 2 MiB pages the kernel zeroes first;
/// - `MIMALLOC_PURGE_DELAY=-1`: freed memory is kept for reuse instead of being handed back to
///   the OS and faulted in again for the next answer.
///
/// Measured in benchmark scenario 2 (200k members in batches of 500, 250 ms latency): the time
/// each request spends in the emulator after its latency is 4–6 ms with these settings and
/// 9–12 ms without, about 40 % of the emulator's CPU then being the kernel zeroing pages.
const ALLOCATOR_ENV: [(&str, &str); 2] =
    [("MIMALLOC_ALLOW_THP", "0"), ("MIMALLOC_PURGE_DELAY", "-1")];

/// Set on the re-executed process, so it never re-executes again.
const REEXECUTED: &str = "MAILCHIMP_EMULATOR_ALLOCATOR_SET";

fn main() -> anyhow::Result<()> {
    let missing: Vec<(&str, &str)> = ALLOCATOR_ENV
        .into_iter()
        .filter(|(name, _)| std::env::var_os(name).is_none())
        .collect();
    if !missing.is_empty() && std::env::var_os(REEXECUTED).is_none() {
        if let Ok(exe) = std::env::current_exe() {
            // `exec` returns only if it failed; the emulator then runs with mimalloc's defaults.
            let error = Command::new(exe)
                .args(std::env::args_os().skip(1))
                .envs(missing)
                .env(REEXECUTED, "1")
                .exec();
            eprintln!("mailchimp-emulator: running with the allocator's defaults ({error})");
        }
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(mailchimp_emulator::main_cli())
}
