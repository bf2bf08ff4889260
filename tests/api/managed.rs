//! A PostgreSQL set up like the managed ones herald is deployed on, started by the tests: TLS
//! only (a CA and a server certificate made with `openssl`; plain TCP is refused), a
//! non-superuser role that owns herald's database, a role that may only write notifications,
//! and Debian's PgBouncer in transaction mode in front of it when a test asks.
//!
//! One cluster serves the whole run, under `target/herald-tls-pg` (left running for the next
//! run; `scripts/test` stops it). Each test makes a database of its own and drops it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use herald::devdb::{Cluster, Setup};

use crate::helpers::TestDb;

/// The role herald runs as: it owns its database, and is no superuser.
pub const OWNER: &str = "herald_owner";
/// A role an app writes notifications with: INSERT (and DELETE) only.
pub const WRITER: &str = "herald_writer";

/// The managed-like server.
pub struct Managed {
    cluster: Cluster,
    /// Its TLS-only TCP port on 127.0.0.1.
    pub port: u16,
    /// The CA that signed its certificate.
    pub ca: PathBuf,
    /// Another CA, which signed nothing of it.
    pub other_ca: PathBuf,
}

/// The server, started on first use.
pub fn managed() -> &'static Managed {
    static MANAGED: OnceLock<Managed> = OnceLock::new();
    crate::helpers::before_connecting();
    MANAGED.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/herald-tls-pg");
        std::fs::create_dir_all(&root).unwrap();
        let tls = root.join("tls");
        if !tls.join("server.crt").exists() {
            make_certificates(&tls);
        }
        let port_file = root.join("port");
        let port: u16 = match std::fs::read_to_string(&port_file) {
            Ok(port) => port.trim().parse().unwrap(),
            Err(_) => {
                let port = TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                std::fs::write(&port_file, port.to_string()).unwrap();
                port
            }
        };
        let read = |name: &str| std::fs::read(tls.join(name)).unwrap();
        let setup = Setup {
            port: Some(port),
            settings: vec![
                ("ssl".into(), "on".into()),
                ("ssl_cert_file".into(), "server.crt".into()),
                ("ssl_key_file".into(), "server.key".into()),
            ],
            // The socket is the tests' own way in; over TCP, TLS or nothing.
            hba: Some(
                "local all all trust\n\
                 hostssl all all 127.0.0.1/32 trust\n\
                 hostnossl all all 0.0.0.0/0 reject\n"
                    .into(),
            ),
            files: vec![
                ("server.crt".into(), read("server.crt")),
                ("server.key".into(), read("server.key")),
            ],
        };
        let cluster = Cluster::start_with(&root, &setup).expect("the TLS-only test cluster");
        let managed = Managed {
            cluster,
            port,
            ca: tls.join("ca.crt"),
            other_ca: tls.join("other-ca.crt"),
        };
        managed.superuser_sql(
            "postgres",
            &format!(
                "do $$ begin
                   if not exists (select from pg_roles where rolname = '{OWNER}') then
                     create role {OWNER} login nosuperuser nocreaterole;
                   end if;
                   if not exists (select from pg_roles where rolname = '{WRITER}') then
                     create role {WRITER} login nosuperuser nocreaterole;
                   end if;
                 end $$;"
            ),
        );
        managed
    })
}

/// A CA, a server certificate it signed for localhost and 127.0.0.1, and an unrelated CA.
fn make_certificates(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for (ca, name) in [("ca", "herald test CA"), ("other-ca", "another CA")] {
        let subject = format!("/CN={name}");
        let (key_out, crt_out) = (format!("{ca}.key"), format!("{ca}.crt"));
        let mut args = vec!["req", "-x509", "-days", "3650", "-subj", &subject];
        args.extend(key);
        args.extend(["-keyout", &key_out, "-out", &crt_out]);
        openssl(&args);
    }
    let mut args = vec!["req", "-subj", "/CN=localhost"];
    args.extend(key);
    args.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(&args);
    std::fs::write(
        dir.join("san.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "3650",
        "-extfile",
        "san.cnf",
        "-out",
        "server.crt",
    ]);
}

impl Managed {
    /// The superuser's way in: the Unix socket, no TLS.
    pub fn superuser_url(&self, db: &str) -> String {
        self.cluster.url(db)
    }

    /// `role`'s URL over TCP, verifying the server against `ca` as `sslmode=verify-full`.
    pub fn tls_url(&self, role: &str, db: &str, ca: &Path) -> String {
        format!(
            "postgresql://{role}@localhost:{}/{db}?sslmode=verify-full&sslrootcert={}",
            self.port,
            ca.display()
        )
    }

    /// Runs `sql` on `db` as the superuser.
    pub fn superuser_sql(&self, db: &str, sql: &str) {
        use diesel::{Connection, connection::SimpleConnection};
        let mut conn = diesel::PgConnection::establish(&self.superuser_url(db))
            .expect("superuser connects over the socket");
        conn.batch_execute(sql).expect("superuser SQL runs");
    }

    /// A new database owned by [`OWNER`], dropped with the returned [`TestDb`]; and its name.
    pub fn database(&'static self) -> (TestDb, String) {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "herald_tls_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        self.superuser_sql("postgres", &format!("create database {name} owner {OWNER}"));
        let db = TestDb::on_server(
            &self.superuser_url(&name),
            &self.superuser_url("postgres"),
            &name,
        );
        (db, name)
    }

    /// `role`'s connection to `db` over TLS, as an app would make it.
    pub async fn connect(&self, role: &str, db: &str) -> tokio_postgres::Client {
        let connector =
            herald::pgtls::Connector::new(&self.tls_url(role, db, &self.ca)).expect("a usable URL");
        let (client, connection) = connector
            .config
            .connect(connector.tls)
            .await
            .expect("connects over TLS");
        actix_web::rt::spawn(connection);
        client
    }

    /// PgBouncer in transaction mode in front of this server, on a port of its own.
    pub fn bouncer(&self) -> Bouncer {
        Bouncer::start(self)
    }
}

/// A PgBouncer process, stopped when dropped.
pub struct Bouncer {
    child: std::process::Child,
    /// Where it listens on 127.0.0.1 (plain TCP: it is the app's neighbour).
    pub port: u16,
    pidfile: PathBuf,
}

impl Bouncer {
    fn start(managed: &Managed) -> Bouncer {
        let home = managed.cluster.home();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let ini = home.join(format!("pgbouncer-{port}.ini"));
        let users = home.join("pgbouncer-users.txt");
        std::fs::write(&users, format!("\"{OWNER}\" \"\"\n\"{WRITER}\" \"\"\n")).unwrap();
        std::fs::write(
            &ini,
            format!(
                "[databases]\n\
                 * = host={socket} port={pg_port}\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = trust\n\
                 auth_file = {users}\n\
                 pool_mode = transaction\n\
                 default_pool_size = 3\n\
                 max_client_conn = 500\n\
                 logfile = {home}/pgbouncer-{port}.log\n\
                 pidfile = {home}/pgbouncer-{port}.pid\n",
                socket = managed.cluster.socket_dir().display(),
                pg_port = managed.port,
                users = users.display(),
                home = home.display(),
            ),
        )
        .unwrap();
        let bouncer = find_program("pgbouncer");
        // PgBouncer refuses to run as root; the cluster's user may read its files.
        let child = if nix_is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(bouncer)
                .arg("--quiet")
                .arg(&ini)
                .spawn()
        } else {
            Command::new(bouncer).arg("--quiet").arg(&ini).spawn()
        }
        .expect("pgbouncer starts (scripts/setup pgbouncer installs it)");
        let deadline = std::time::Instant::now() + crate::helpers::WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "pgbouncer did not listen"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Bouncer {
            child,
            port,
            pidfile: home.join(format!("pgbouncer-{port}.pid")),
        }
    }

    /// `role`'s URL to `db` through this PgBouncer.
    pub fn url(&self, role: &str, db: &str) -> String {
        format!(
            "postgresql://{role}@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        // PgBouncer itself, not runuser (which would say so on the terminal).
        let pid =
            std::fs::read_to_string(&self.pidfile).unwrap_or_else(|_| self.child.id().to_string());
        let _ = Command::new("kill").arg(pid.trim()).status();
        let _ = self.child.wait();
    }
}

fn nix_is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `name` on PATH or in /usr/sbin (Debian installs pgbouncer there).
fn find_program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed (scripts/setup pgbouncer)"))
}
