//! herald as a process of the test's own: for what only a real process shows (its log, its
//! exit, a SIGKILL).

use std::process::Command;

use super::{SECRET, TestDb, WAIT};

/// herald running as a process of the test's own, on `db`, with `env` added.
pub struct Process {
    child: tokio::process::Child,
    log: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>,
    /// Everything logged so far.
    pub logged: String,
    /// `http://127.0.0.1:<port>`.
    pub address: String,
}

impl Process {
    pub async fn start(db: &TestDb, env: &[(&str, &str)]) -> Process {
        Process::start_unset(db, env, &[]).await
    }

    /// As [`Process::start`], without the variables named in `unset` (the secret, say).
    pub async fn start_unset(db: &TestDb, env: &[(&str, &str)], unset: &[&str]) -> Process {
        use tokio::io::AsyncBufReadExt;
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"));
        command
            .arg("serve")
            .env("DATABASE_URL", &db.url)
            .env("HERALD_JWT_SECRET", SECRET)
            .env("HERALD_BIND", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied());
        for name in unset {
            command.env_remove(name);
        }
        let mut child = command
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let mut process = Process {
            child,
            log,
            logged: String::new(),
            address: String::new(),
        };
        process.address = tokio::time::timeout(WAIT, async {
            while let Some(line) = process.next_line().await {
                if let Some((_, url)) = line.split_once("listening url=") {
                    return url.trim().trim_end_matches('/').to_owned();
                }
            }
            panic!("herald exited before listening:\n{}", process.logged);
        })
        .await
        .expect("herald listens");
        process
    }

    async fn next_line(&mut self) -> Option<String> {
        let line = self.log.next_line().await.unwrap()?;
        self.logged.push_str(&line);
        self.logged.push('\n');
        Some(line)
    }

    /// Sends SIGKILL: the instance dies without a word to anyone.
    pub fn kill(&mut self) {
        self.child.start_kill().expect("SIGKILL is sent");
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.id().unwrap().to_string();
        let kill = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(kill.success());
    }

    /// Waits (bounded) for the exit, and reads the rest of the log.
    pub async fn exit(&mut self) -> std::process::ExitStatus {
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("herald exits within its bound")
            .unwrap();
        while self.next_line().await.is_some() {}
        status
    }
}
