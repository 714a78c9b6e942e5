//! `mailchimp-emulator`: serves the emulated Mailchimp Marketing API (see the library docs).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    mailchimp_emulator::main_cli().await
}
