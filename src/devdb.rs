//! A private PostgreSQL cluster for dev mode (no `DATABASE_URL`) and for tests when no server
//! is given, run with the machine's own PostgreSQL binaries (`initdb`, `pg_ctl`).
//!
//! Layout under the data dir: `pg/` (the cluster), `run/` (its Unix socket and log; no TCP
//! port, so it never collides with another server), `dev-jwt-secret`.
//!
//! PostgreSQL refuses to run as root, so as root the cluster belongs to, and runs as, the
//! `postgres` user, which often cannot enter the data dir at all (a home directory is 0700).
//! Rather than loosen the permissions of the user's directories, the cluster then lives in a
//! directory of its own that `postgres` owns, `/var/tmp/herald-pg-<random>`, and `pg` and
//! `run` under the data dir are links to it.

use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use diesel::prelude::*;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::config::{DatabaseArgs, DatabaseUrl};

/// Where the clusters of root's data dirs live (see the module docs).
const ROOT_CLUSTERS: &str = "/var/tmp";

/// The superuser and database of the private cluster.
const USER: &str = "herald";
const DATABASE: &str = "herald";

/// The database herald uses: the configured one, or the private cluster's.
pub struct Database {
    url: DatabaseUrl,
    cluster: Option<Cluster>,
}

impl Database {
    /// `DATABASE_URL` if set; otherwise the private cluster under the data dir, started if
    /// it is not running (and then stopped again when this is dropped).
    pub fn open(args: &DatabaseArgs) -> io::Result<Database> {
        if let Some(url) = &args.database_url {
            return Ok(Database {
                url: url.clone(),
                cluster: None,
            });
        }
        let cluster = Cluster::start(&args.data_dir).map_err(|err| {
            io::Error::other(format!(
                "could not start the private PostgreSQL cluster under {} (set DATABASE_URL \
                 to use a server of your own): {err}",
                args.data_dir.display()
            ))
        })?;
        cluster.create_database(DATABASE)?;
        let url = DatabaseUrl::new(cluster.url(DATABASE));
        log::info!("private cluster in use database_url={url}");
        Ok(Database {
            url,
            cluster: Some(cluster),
        })
    }

    /// The URL to connect to.
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }
}

/// How a cluster is set up beyond dev mode's: a server on its socket only, trusting local
/// users. The tests set one up as managed services are (TLS only, over TCP).
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// Also listen on 127.0.0.1 at this port (the socket's name follows it too).
    pub port: Option<u16>,
    /// More server settings (`name`, `value`).
    pub settings: Vec<(String, String)>,
    /// Replaces `pg_hba.conf` when the cluster is made.
    pub hba: Option<String>,
    /// Files put into the data directory when the cluster is made (a server certificate and
    /// key), readable by the server only.
    pub files: Vec<(String, Vec<u8>)>,
}

/// A private cluster under a directory.
pub struct Cluster {
    data: PathBuf,
    socket_dir: PathBuf,
    port: Option<u16>,
    /// Where its commands run: a directory its owner can enter.
    home: PathBuf,
    owner: Option<(u32, u32)>,
    started_here: bool,
}

impl Cluster {
    /// Initializes (first time) and starts the cluster under `root`, or joins it if it is
    /// already running. Safe to call from several processes at once.
    pub fn start(root: &Path) -> io::Result<Cluster> {
        Cluster::start_with(root, &Setup::default())
    }

    /// [`Cluster::start`], set up as `setup` says (which applies when the cluster is made).
    pub fn start_with(root: &Path, setup: &Setup) -> io::Result<Cluster> {
        fs::create_dir_all(root)?;
        let root = root.canonicalize()?;
        let lock = File::create(root.join("cluster.lock"))?;
        lock.lock()?;
        let owner = if is_root() {
            Some(postgres_user()?)
        } else {
            None
        };
        let legacy = fs::symlink_metadata(root.join("pg")).is_ok_and(|m| m.is_dir());
        let home = match owner {
            // A cluster made in place by an earlier version stays where it is.
            Some((uid, gid)) if !legacy => {
                let home = root_cluster_home(&root, uid, gid)?;
                link(&root.join("pg"), &home.join("pg"))?;
                link(&root.join("run"), &home.join("run"))?;
                home
            }
            _ => root.clone(),
        };
        let data = home.join("pg");
        let socket_dir = socket_dir(&home)?;
        fs::create_dir_all(&socket_dir)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&socket_dir, Some(uid), Some(gid))?;
        }
        let mut cluster = Cluster {
            data,
            socket_dir,
            port: setup.port,
            home,
            owner,
            started_here: false,
        };
        if !cluster.data.join("PG_VERSION").exists() {
            cluster.initdb(setup)?;
        }
        if !cluster.is_running()? {
            let mut options = format!(
                "-k '{}' -c max_connections=200",
                cluster.socket_dir.display()
            );
            match setup.port {
                Some(port) => options += &format!(" -c listen_addresses=127.0.0.1 -p {port}"),
                None => options += " -c listen_addresses=''",
            }
            for (name, value) in &setup.settings {
                options += &format!(" -c {name}={value}");
            }
            cluster.pg_ctl(&[
                "start",
                "-w",
                "-t",
                "60",
                "-l",
                &cluster.socket_dir.join("postgres.log").to_string_lossy(),
                "-o",
                &options,
            ])?;
            cluster.started_here = true;
            log::info!("private cluster started data={}", cluster.data.display());
        }
        drop(lock);
        Ok(cluster)
    }

    /// A libpq/tokio-postgres URL for database `db` over the cluster's socket, as its
    /// superuser.
    pub fn url(&self, db: &str) -> String {
        let port = self.port.map(|p| format!("&port={p}")).unwrap_or_default();
        format!(
            "postgresql://{USER}@/{db}?host={}{port}",
            utf8_percent_encode(&self.socket_dir.to_string_lossy(), PATH_VALUE)
        )
    }

    /// The directory of the cluster's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// Where the cluster's own files may go (owned by the user it runs as).
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Creates database `name` unless it exists.
    pub fn create_database(&self, name: &str) -> io::Result<()> {
        let mut conn = PgConnection::establish(&self.url("postgres")).map_err(io::Error::other)?;
        crate::store::create_database(&mut conn, name).map_err(io::Error::other)
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

    fn initdb(&self, setup: &Setup) -> io::Result<()> {
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
        ]))?;
        let mut files = setup.files.clone();
        if let Some(hba) = &setup.hba {
            files.push(("pg_hba.conf".into(), hba.clone().into_bytes()));
        }
        for (name, contents) in files {
            let path = self.data.join(name);
            fs::write(&path, contents)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
            if let Some((uid, gid)) = self.owner {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))?;
            }
        }
        Ok(())
    }

    fn pg_ctl(&self, args: &[&str]) -> io::Result<()> {
        run(self.command("pg_ctl")?.arg("-D").arg(&self.data).args(args))
    }

    fn command(&self, program: &str) -> io::Result<Command> {
        let mut command = Command::new(find_binary(program)?);
        if let Some((uid, gid)) = self.owner {
            // Its own directory: initdb and pg_ctl return to the working directory, which
            // the postgres user may not be allowed to enter.
            command.uid(uid).gid(gid).current_dir(&self.home);
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

fn run(command: &mut Command) -> io::Result<()> {
    let output = command.stdin(Stdio::null()).output()?;
    if output.status.success() {
        Ok(())
    } else {
        let program = Path::new(command.get_program());
        Err(io::Error::other(format!(
            "{} failed ({}): {}",
            program.file_name().unwrap_or_default().to_string_lossy(),
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

/// What a query value may hold unencoded here: a socket path keeps its slashes.
const PATH_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.');

/// The directory, owned by `postgres`, that holds the cluster of root's data dir `root`: the
/// one its links already point at, else a new one with a random name. (Not a name derived
/// from `root`'s path: a fresh clone where a deleted one was would find the old cluster, with
/// the old clone's certificates and settings.) Each records the data dir it serves in `root`,
/// so that one whose data dir has gone (a clone removed) is removed when the next is made.
fn root_cluster_home(root: &Path, uid: u32, gid: u32) -> io::Result<PathBuf> {
    if let Ok(target) = fs::read_link(root.join("pg"))
        && let Some(home) = target.parent()
        && home.parent() == Some(Path::new(ROOT_CLUSTERS))
        && fs::symlink_metadata(home).is_ok()
    {
        check_home(home, uid)?;
        return Ok(home.to_path_buf());
    }
    remove_orphans(uid);
    use std::hash::BuildHasher;
    let random = std::collections::hash_map::RandomState::new().hash_one((
        root,
        std::process::id(),
        std::time::SystemTime::now(),
    ));
    let home = Path::new(ROOT_CLUSTERS).join(format!("herald-pg-{random:016x}"));
    // `create`, not `create_dir_all`: a directory that is already there is not ours.
    fs::DirBuilder::new().mode(0o700).create(&home)?;
    std::os::unix::fs::chown(&home, Some(uid), Some(gid))?;
    fs::write(home.join("root"), root.as_os_str().as_bytes())?;
    check_home(&home, uid)?;
    Ok(home)
}

/// /var/tmp is shared by everyone: a directory there that `postgres` does not own, or a
/// link, was not made by us and is refused.
fn check_home(home: &Path, uid: u32) -> io::Result<()> {
    let meta = fs::symlink_metadata(home)?;
    if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o077 != 0 {
        return Err(io::Error::other(format!(
            "{} exists but was not made by herald for the postgres user (remove it)",
            home.display()
        )));
    }
    Ok(())
}

/// Removes the cluster homes (ours: owned by `postgres`, with a `root` file) whose data dir
/// no longer links to them and whose server is not running. Best effort.
fn remove_orphans(uid: u32) {
    let Ok(entries) = fs::read_dir(ROOT_CLUSTERS) else {
        return;
    };
    for entry in entries.flatten() {
        let home = entry.path();
        let ours = entry
            .file_name()
            .to_string_lossy()
            .starts_with("herald-pg-")
            && check_home(&home, uid).is_ok();
        let Some(root) = ours.then(|| fs::read(home.join("root")).ok()).flatten() else {
            continue;
        };
        let root = PathBuf::from(std::ffi::OsString::from_vec(root));
        let linked = fs::read_link(root.join("pg")).is_ok_and(|t| t == home.join("pg"));
        let running = home.join("pg/postmaster.pid").exists();
        if !linked && !running {
            match fs::remove_dir_all(&home) {
                Ok(()) => log::info!(
                    "removed the cluster of a data dir that is gone dir={}",
                    home.display()
                ),
                Err(err) => log::warn!("could not remove {} error={err}", home.display()),
            }
        }
    }
}

/// Makes `link` point at `target`, replacing a link that points elsewhere.
fn link(link: &Path, target: &Path) -> io::Result<()> {
    if fs::read_link(link).is_ok_and(|current| current == target) {
        return Ok(());
    }
    if fs::symlink_metadata(link).is_ok() {
        fs::remove_file(link)?;
    }
    std::os::unix::fs::symlink(target, link)
}
