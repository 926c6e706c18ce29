//! [`TestPostgres`]: a throwaway PostgreSQL server from the system's packages, for tests.
//!
//! `initdb` in a temporary directory, `postgres` on a free port of `127.0.0.1` (and a Unix
//! socket in that directory), trust authentication for the `postgres` user, no `fsync` (the
//! data is thrown away; [`TestPostgres::start_durable`] keeps PostgreSQL's defaults). Running as root, the server runs as the system user `postgres` (it
//! refuses to run as root). It is killed when dropped, and a watchdog kills it (and removes
//! the directory) if the test process dies first.
//!
//! The binaries are looked for in `AGENT_AUTH_PG_BIN` if set, else the newest
//! `/usr/lib/postgresql/*/bin` (Debian's layout), else `PATH`. Without them, [`TestPostgres::start`]
//! returns `Ok(None)` and tests print `SKIPPED: PostgreSQL not installed`, unless
//! `AGENT_AUTH_REQUIRE_POSTGRES=1` (CI), where it is an error.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::secrets::new_id;

/// A running throwaway PostgreSQL server. See the module docs.
#[derive(Debug)]
pub struct TestPostgres {
    dir: PathBuf,
    port: u16,
    server: Child,
    watchdog: Option<Child>,
}

/// The line a test prints when it did not run for want of PostgreSQL.
pub const POSTGRES_SKIPPED: &str = "SKIPPED: PostgreSQL not installed (initdb/postgres not found; \
     install postgresql-15, or set AGENT_AUTH_REQUIRE_POSTGRES=1 to fail instead)";

fn other(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

/// The directory holding `initdb` and `postgres`, if any.
fn bin_dir() -> Option<PathBuf> {
    let has = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    if let Some(d) = std::env::var_os("AGENT_AUTH_PG_BIN") {
        let d = PathBuf::from(d);
        return has(&d).then_some(d);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, d)) = versions.pop() {
        return Some(d);
    }
    std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).find(|d| has(d)))
}

/// Whether the tests must fail (not skip) without PostgreSQL.
pub fn postgres_required() -> bool {
    std::env::var("AGENT_AUTH_REQUIRE_POSTGRES").as_deref() == Ok("1")
}

/// `(uid, gid)` of the system user `postgres`, when this process runs as root.
#[cfg(unix)]
fn run_as() -> io::Result<Option<(u32, u32)>> {
    use std::os::unix::fs::MetadataExt;
    // `/proc/self` belongs to the process's effective user.
    let me = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1);
    if me != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .ok_or_else(|| other("running as root, but there is no system user postgres"))?;
    let fields: Vec<&str> = line.split(':').collect();
    let id = |i: usize| -> io::Result<u32> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| other("unreadable /etc/passwd entry for postgres"))
    };
    Ok(Some((id(2)?, id(3)?)))
}

fn command(bin: &Path, user: Option<(u32, u32)>) -> Command {
    let mut cmd = Command::new(bin);
    #[cfg(unix)]
    if let Some((uid, gid)) = user {
        use std::os::unix::process::CommandExt;
        cmd.uid(uid).gid(gid);
    }
    #[cfg(not(unix))]
    let _ = user;
    cmd
}

fn free_port() -> io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl TestPostgres {
    /// Starts a server; `Ok(None)` when PostgreSQL is not installed (and not required).
    pub async fn start() -> io::Result<Option<Self>> {
        Self::start_with(false).await
    }

    /// [`start`](Self::start) with PostgreSQL's own durability settings (`fsync`, synchronous
    /// commits, full-page writes on), for benchmarks that count the cost of a commit.
    pub async fn start_durable() -> io::Result<Option<Self>> {
        Self::start_with(true).await
    }

    async fn start_with(durable: bool) -> io::Result<Option<Self>> {
        let Some(bin) = bin_dir() else {
            if postgres_required() {
                return Err(other(
                    "AGENT_AUTH_REQUIRE_POSTGRES=1 but PostgreSQL (initdb, postgres) is not installed",
                ));
            }
            return Ok(None);
        };
        let user = run_as()?;
        let dir =
            std::env::temp_dir().join(format!("agent-auth-pg-{}", new_id("").map_err(other_e)?));
        let data = dir.join("data");
        std::fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))?;
        }
        let log = std::fs::File::create(dir.join("initdb.log"))?;
        let status = command(&bin.join("initdb"), user)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()?;
        if !status.success() {
            let log = std::fs::read_to_string(dir.join("initdb.log")).unwrap_or_default();
            let _ = std::fs::remove_dir_all(&dir);
            return Err(other(format!("initdb failed ({status}): {log}")));
        }
        let port = free_port()?;
        let log = std::fs::File::create(dir.join("server.log"))?;
        let fast: &[&str] = if durable {
            &[]
        } else {
            &[
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        };
        let server = command(&bin.join("postgres"), user)
            .arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(&dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(fast)
            .args(["-c", "max_connections=400"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut pg = Self {
            dir,
            port,
            server,
            watchdog: None,
        };
        pg.watchdog = pg.spawn_watchdog().ok();
        pg.wait_ready().await?;
        Ok(Some(pg))
    }

    /// A shell that kills the server and removes its directory once this process is gone.
    fn spawn_watchdog(&self) -> io::Result<Child> {
        let script = format!(
            "while kill -0 {parent} 2>/dev/null; do sleep 1; done; \
             kill -KILL {server} 2>/dev/null; sleep 1; rm -rf '{dir}'",
            parent = std::process::id(),
            server = self.server.id(),
            dir = self.dir.display(),
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    }

    /// Waits until the server accepts a real connection (or has exited).
    async fn wait_ready(&mut self) -> io::Result<()> {
        let url = self.url("postgres");
        for _ in 0..600 {
            if let Some(status) = self.server.try_wait()? {
                let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                return Err(other(format!("postgres exited ({status}): {log}")));
            }
            if let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                let conn = tokio::spawn(conn);
                let ok = client.simple_query("SELECT 1").await.is_ok();
                drop(client);
                let _ = conn.await;
                if ok {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(other("postgres did not accept connections within 30 s"))
    }

    /// The port on `127.0.0.1`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name` on this server (user `postgres`, no password).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates a fresh, empty database and returns its URL.
    pub async fn create_database(&self) -> io::Result<String> {
        let name = format!("t{}", new_id("").map_err(other_e)?);
        let (client, conn) = tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
            .await
            .map_err(io::Error::other)?;
        let conn = tokio::spawn(conn);
        // `name` is `t` and hex digits: safe to splice.
        let created = client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(io::Error::other);
        drop(client);
        let _ = conn.await;
        created?;
        Ok(self.url(&name))
    }
}

fn other_e(e: impl std::fmt::Display) -> io::Error {
    other(e.to_string())
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The server that [`TestIssuer`](super::TestIssuer)s share under
/// `AGENT_AUTH_TEST_STORE=postgres`: started at first use, killed by its watchdog when the test
/// process ends.
pub(crate) async fn shared() -> io::Result<&'static TestPostgres> {
    static SHARED: tokio::sync::OnceCell<TestPostgres> = tokio::sync::OnceCell::const_new();
    SHARED
        .get_or_try_init(|| async {
            TestPostgres::start().await?.ok_or_else(|| {
                other("AGENT_AUTH_TEST_STORE=postgres, but PostgreSQL is not installed")
            })
        })
        .await
}
