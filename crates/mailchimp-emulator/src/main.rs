//! `mailchimp-emulator`: serves the emulated Mailchimp Marketing API (see the library docs).

/// mimalloc: the emulator parses and builds JSON for every member of every batch.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    mailchimp_emulator::main_cli().await
}
