//! `vestibule run` without `VESTIBULE_ADMIN_TOKEN`: it makes a token, prints it once (never in
//! the log), and the console and `vestibule admin` it points to work with it at once.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use reqwest::StatusCode;

use crate::helpers::temp_dir;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_without_an_admin_token_makes_one_prints_it_once_and_the_console_takes_it() {
    let dir = temp_dir("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args(["run", "--listen", "127.0.0.1:0"])
        .arg("--keys-dir")
        .arg(dir.join("keys"))
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.join("run.db").display()))
        .env_remove("VESTIBULE_ADMIN_TOKEN")
        .env_remove("VESTIBULE_REDIS_URL")
        .env_remove("VESTIBULE_LISTEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the vestibule binary runs");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    // The banner, up to its last line.
    let mut banner = String::new();
    while !banner.contains("show demo") {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "run ended early:\n{banner}"
        );
        banner.push_str(&line);
    }
    let lines: Vec<&str> = banner.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("admin token"))
        .expect("the banner names the admin token");
    let token = lines[at + 2].trim().to_owned();
    assert_eq!(token.len(), 64, "32 random bytes, hex: {token:?}");
    let base = lines[at + 4]
        .trim()
        .strip_prefix("open ")
        .and_then(|rest| rest.split("/admin/ui").next())
        .expect("the banner names the console")
        .to_owned();

    // What the console does with the pasted token: read the events and their figures.
    let http = reqwest::Client::new();
    let console = http.get(format!("{base}/admin/ui")).send().await.unwrap();
    assert_eq!(console.status(), StatusCode::OK);
    let events = http
        .get(format!("{base}/admin/v1/events/demo"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), StatusCode::OK);
    let wrong = http
        .get(format!("{base}/admin/v1/events/demo"))
        .bearer_auth("0".repeat(64))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    // And the command the banner gives.
    let show = tokio::process::Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args(["admin", "--url", &base, "show", "demo"])
        .env("VESTIBULE_ADMIN_TOKEN", &token)
        .output()
        .await
        .unwrap();
    assert!(
        show.status.success(),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );

    child.kill().unwrap();
    child.wait().unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let everything = banner + &rest + &logs.join().unwrap();
    assert_eq!(
        everything.matches(&token).count(),
        1,
        "printed once, never logged"
    );
    let _ = std::fs::remove_dir_all(dir);
}
