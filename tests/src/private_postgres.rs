//! A Postgres server a test starts for itself (and may stop, crash and restart, or configure
//! for TLS) without touching the shared server: `initdb` as user postgres through `runuser`, its
//! own free port on 127.0.0.1 and its socket in its own directory. Stopped and removed on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{ensure, Context, Result};

/// Runs a program to its end; fails with its output when it exits non-zero.
pub fn run(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Result<()> {
    let program = program.as_ref();
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program:?}"))?;
    ensure!(
        out.status.success(),
        "{program:?} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn as_postgres(program: &Path, args: &[&str]) -> Result<()> {
    let program = program.to_str().context("binary path")?;
    let mut all = vec!["-u", "postgres", "--", program];
    all.extend(args);
    run("runuser", &all)
}

/// See the module docs.
pub struct PrivatePostgres {
    dir: PathBuf,
    bin: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Server options beyond the port, socket and small-footprint defaults (e.g. TLS).
    options: String,
}

impl PrivatePostgres {
    /// A directory and a port for one, not yet initialised; `Ok(None)` with the reason printed
    /// (naming `what` was skipped) when this machine cannot run one: not root, or no server
    /// binaries.
    pub fn prepare(what: &str) -> Result<Option<PrivatePostgres>> {
        let skip = |why: &str| {
            println!("SKIPPED {what}: {why}");
            Ok(None)
        };
        let uid = Command::new("id").arg("-u").output()?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return skip("not root (initdb must run as user postgres through runuser)");
        }
        let Some(bin) = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
            .max()
        else {
            return skip("no /usr/lib/postgresql/*/bin/initdb");
        };
        let dir =
            std::env::temp_dir().join(format!("chimpsync-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        Ok(Some(PrivatePostgres {
            dir,
            bin,
            port,
            options: String::new(),
        }))
    }

    /// [`PrivatePostgres::prepare`], then initialised and started.
    pub fn start(what: &str) -> Result<Option<PrivatePostgres>> {
        let Some(pg) = Self::prepare(what)? else {
            return Ok(None);
        };
        pg.initdb()?;
        pg.start_server()?;
        Ok(Some(pg))
    }

    /// Adds server options (`-c name=value ...`) for every start.
    pub fn with_options(mut self, options: &str) -> PrivatePostgres {
        self.options = options.to_string();
        self
    }

    /// A path in its directory (files put there before [`PrivatePostgres::initdb`] are given to
    /// user postgres).
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// Gives its directory to user postgres and creates the cluster (trust auth, UTF8, C locale).
    pub fn initdb(&self) -> Result<()> {
        run(
            "chown",
            &["-R", "postgres:postgres", &self.dir.display().to_string()],
        )?;
        as_postgres(
            &self.bin.join("initdb"),
            &[
                "-D",
                &self.path("data"),
                "--auth=trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-instructions",
            ],
        )
    }

    /// Starts the (stopped) server and waits until it accepts connections.
    pub fn start_server(&self) -> Result<()> {
        let options = format!(
            "-c port={} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
             -c fsync=off -c shared_buffers=32MB -c max_connections=100 {}",
            self.port,
            self.dir.display(),
            self.options,
        );
        as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                &self.path("data"),
                "-l",
                &self.path("postgres.log"),
                "-o",
                &options,
                "-w",
                "start",
            ],
        )
    }

    /// Stops the server: `fast` (clients disconnected, clean shutdown) or `immediate` (a crash:
    /// recovery from the WAL at the next start).
    pub fn stop_server(&self, mode: &str) -> Result<()> {
        as_postgres(
            &self.bin.join("pg_ctl"),
            &["-D", &self.path("data"), "-m", mode, "-w", "stop"],
        )
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.stop_server("immediate");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
