//! A private PostgreSQL cluster for dev mode (no `DATABASE_URL`) and for tests when no server
//! is given, run with the machine's own PostgreSQL binaries (`initdb`, `pg_ctl`).
//!
//! Layout under the data dir: `pg/` (the cluster), `run/` (its Unix socket and log; no TCP
//! port, so it never collides with another server), `dev-jwt-secret`. PostgreSQL refuses to
//! run as root, so as root the cluster belongs to, and runs as, the `postgres` user.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::config::Config;

/// The superuser and database of the private cluster.
const USER: &str = "herald";
const DATABASE: &str = "herald";

/// The database herald uses: the configured one, or the private cluster's.
pub struct Database {
    url: String,
    cluster: Option<Cluster>,
}

impl Database {
    /// `DATABASE_URL` if set; otherwise the private cluster under the data dir, started if
    /// it is not running (and then stopped again when this is dropped).
    pub fn open(config: &Config) -> io::Result<Database> {
        if let Some(url) = &config.database_url {
            return Ok(Database {
                url: url.clone(),
                cluster: None,
            });
        }
        let cluster = Cluster::start(&config.data_dir)?;
        cluster.create_database(DATABASE)?;
        let url = cluster.url(DATABASE);
        log::info!("private cluster in use database_url={url}");
        Ok(Database {
            url,
            cluster: Some(cluster),
        })
    }

    /// The URL to connect to.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// A private cluster under a directory.
pub struct Cluster {
    data: PathBuf,
    socket_dir: PathBuf,
    owner: Option<(u32, u32)>,
    started_here: bool,
}

impl Cluster {
    /// Initializes (first time) and starts the cluster under `root`, or joins it if it is
    /// already running. Safe to call from several processes at once.
    pub fn start(root: &Path) -> io::Result<Cluster> {
        fs::create_dir_all(root)?;
        let root = root.canonicalize()?;
        let lock = File::create(root.join("cluster.lock"))?;
        lock.lock()?;
        let data = root.join("pg");
        let socket_dir = socket_dir(&root)?;
        let owner = if is_root() {
            // The postgres user must be able to reach pg/ and run/ below root.
            let mode = fs::metadata(&root)?.permissions().mode();
            fs::set_permissions(&root, fs::Permissions::from_mode(mode | 0o711))?;
            Some(postgres_user()?)
        } else {
            None
        };
        fs::create_dir_all(&socket_dir)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&socket_dir, Some(uid), Some(gid))?;
        }
        let mut cluster = Cluster {
            data,
            socket_dir,
            owner,
            started_here: false,
        };
        if !cluster.data.join("PG_VERSION").exists() {
            cluster.initdb()?;
        }
        if !cluster.is_running()? {
            cluster.pg_ctl(&[
                "start",
                "-w",
                "-t",
                "60",
                "-l",
                &cluster.socket_dir.join("postgres.log").to_string_lossy(),
                "-o",
                &format!(
                    "-c listen_addresses='' -k '{}' -c max_connections=200",
                    cluster.socket_dir.display()
                ),
            ])?;
            cluster.started_here = true;
            log::info!("private cluster started data={}", cluster.data.display());
        }
        drop(lock);
        Ok(cluster)
    }

    /// A libpq/tokio-postgres URL for database `db` over the cluster's socket.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgresql://{USER}@/{db}?host={}",
            percent_encode(&self.socket_dir.to_string_lossy())
        )
    }

    /// Creates database `name` unless it exists.
    pub fn create_database(&self, name: &str) -> io::Result<()> {
        let mut conn = PgConnection::establish(&self.url("postgres")).map_err(io::Error::other)?;
        #[derive(QueryableByName)]
        struct Found {
            #[diesel(sql_type = Text)]
            #[allow(dead_code)]
            datname: String,
        }
        let found: Vec<Found> =
            diesel::sql_query("select datname from pg_database where datname = $1")
                .bind::<Text, _>(name)
                .load(&mut conn)
                .map_err(io::Error::other)?;
        if found.is_empty() {
            // Identifiers cannot be bind parameters; the name is ours, quote it anyway.
            diesel::sql_query(format!("create database \"{}\"", name.replace('"', "\"\"")))
                .execute(&mut conn)
                .map_err(io::Error::other)?;
        }
        Ok(())
    }

    /// Stops the cluster if this process started it.
    pub fn stop(&mut self) -> io::Result<()> {
        if self.started_here {
            self.pg_ctl(&["stop", "-w", "-m", "fast"])?;
            self.started_here = false;
            log::info!("private cluster stopped");
        }
        Ok(())
    }

    fn is_running(&self) -> io::Result<bool> {
        // 0: running; 3: not running; 4: no usable data directory.
        let status = self
            .command("pg_ctl")?
            .args(["status", "-D"])
            .arg(&self.data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        Ok(status.success())
    }

    fn initdb(&self) -> io::Result<()> {
        fs::create_dir_all(&self.data)?;
        fs::set_permissions(&self.data, fs::Permissions::from_mode(0o700))?;
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(&self.data, Some(uid), Some(gid))?;
        }
        run(self.command("initdb")?.arg("-D").arg(&self.data).args([
            "-U",
            USER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]))
    }

    fn pg_ctl(&self, args: &[&str]) -> io::Result<()> {
        run(self.command("pg_ctl")?.arg("-D").arg(&self.data).args(args))
    }

    fn command(&self, program: &str) -> io::Result<Command> {
        let mut command = Command::new(find_binary(program)?);
        if let Some((uid, gid)) = self.owner {
            command.uid(uid).gid(gid);
        }
        // The server must outlive a Ctrl-C aimed at herald's terminal: we stop it ourselves.
        command.process_group(0);
        Ok(command)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Some(cluster) = &mut self.cluster
            && let Err(err) = cluster.stop()
        {
            log::warn!("private cluster did not stop error={err}");
        }
    }
}

/// Dev mode's JWT secret: random, kept under `dir` so tokens outlive a restart (open tabs
/// keep working) and `herald token` mints tokens the dev server accepts.
pub fn dev_secret(dir: &Path) -> io::Result<Vec<u8>> {
    fs::create_dir_all(dir)?;
    let path = dir.join("dev-jwt-secret");
    match fs::read(&path) {
        Ok(secret) if secret.len() >= 32 => return Ok(secret),
        Ok(_) => fs::remove_file(&path)?,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(secret.as_bytes())?;
    Ok(secret.into_bytes())
}

fn run(command: &mut Command) -> io::Result<()> {
    let output = command.stdin(Stdio::null()).output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{:?} failed ({}): {}",
            command.get_program(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// `name` on PATH, else in the newest `/usr/lib/postgresql/<version>/bin` (Debian keeps the
/// server binaries off PATH).
fn find_binary(name: &str) -> io::Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let mut debian: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.filter_map(|d| d.ok())
                .map(|d| d.path().join("bin").join(name))
                .collect()
        })
        .unwrap_or_default();
    debian.sort_by_key(|p| {
        p.components()
            .nth(4)
            .and_then(|c| c.as_os_str().to_str()?.parse::<u32>().ok())
    });
    on_path
        .into_iter()
        .chain(debian.into_iter().rev())
        .find(|p| p.is_file())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{name} not found: install PostgreSQL (apt-get install postgresql) or set DATABASE_URL"),
            )
        })
}

/// Unix socket paths are limited to 107 bytes; fall back to a short directory under /tmp.
fn socket_dir(root: &Path) -> io::Result<PathBuf> {
    let dir = root.join("run");
    if dir.join(".s.PGSQL.5432.lock").as_os_str().len() < 100 {
        return Ok(dir);
    }
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    root.hash(&mut hasher);
    Ok(std::env::temp_dir().join(format!("herald-{:016x}", hasher.finish())))
}

fn is_root() -> bool {
    // Without libc: the owner of /proc/self is this process's effective user.
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn postgres_user() -> io::Result<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres") && fields.len() > 3)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "running as root, and PostgreSQL refuses to: no 'postgres' user to run it as",
            )
        })
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
