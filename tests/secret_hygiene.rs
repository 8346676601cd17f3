//! Secret hygiene: every sample flow runs with TRACE logging captured (the production filter, so the
//! payload caps apply); no TOTP/SMS secret, OTP, texted code, recovery code, invite token, DSN key or
//! cookie value may appear in a log line or in an error body.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use postflow::backend::{App, Backend};
use postflow::scenario::{load_scenario, plan, run_event};
use postflow::session::Session;
use shared::config::Config;
use shared::domain::otp::{RecoveryCodes, Totp};
use shared::domain::user::InterfaceType;
use shared::secret::Secret;
use shared::storage::seed::{Seed, load_seed};
use shared::storage::users::load_user;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_in_logs_or_error_bodies() {
    let capture = Capture::default();
    let sink = capture.clone();
    // The layer and filter the functions install, writing into the capture.
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    let filter = shared::telemetry::filter(&shared::telemetry::filter_directive(Some("TRACE".into()), None));
    let subscriber = tracing_subscriber::registry()
        .with(shared::telemetry::json_layer(move || sink.clone()).with_filter(filter));
    let _guard = tracing::subscriber::set_default(subscriber);

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let backend = Backend::embedded();
    let app = App::new(&backend, Config::for_local("postflow", "postflow-events"));
    let mut secrets: Vec<String> = vec![
        "8d3f7a1c2b9e4f6051a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708".into(), // invite token of the samples
        "c0ffee0c0ffee0c0ffee0c0ffee0c0ff".into(),                                 // DSN public key
        Config::for_local("a", "b").invite_cookie_key.unwrap().expose().to_owned(),
    ];
    let mut error_bodies = Vec::new();
    for f in plan(&[root.join("events")]).unwrap() {
        let (s, dir) = load_scenario(&f).unwrap();
        if let Some(seed) = &s.seed {
            let seed: Seed = serde_json::from_str(&std::fs::read_to_string(dir.join(seed)).unwrap()).unwrap();
            load_seed(backend.table.as_ref(), &seed, postflow::scenario::now_secs() * 1000).await.unwrap();
        }
        let mut session = Session::default();
        for step in &s.steps {
            let r = run_event(&app, &mut session, &dir.join(&step.event), step.expect.as_ref()).await;
            assert!(r.failure.is_none(), "{:?}", r.failure);
            if let Some(secret) = &session.secret {
                secrets.push(secret.clone());
                let t = Totp::authenticator_app(&Secret::new(secret.clone())).unwrap();
                let now = postflow::scenario::now_secs();
                for c in (t.counter_at(now) - 2)..=(t.counter_at(now) + 2) {
                    secrets.push(t.code_at_counter(c as u64));
                }
                let sms = Totp::sms(&Secret::new(secret.clone())).unwrap();
                for c in (sms.counter_at(now) - 1)..=(sms.counter_at(now) + 1) {
                    secrets.push(sms.code_at_counter(c as u64));
                }
            }
            secrets.extend(session.sms_code.clone());
            secrets.extend(session.cookies.values().cloned());
            if r.status.is_some_and(|s| s >= 400) {
                error_bodies.push(r.response["body"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    // Recovery codes and salts of every enrolled user.
    for user in ["42", "44"] {
        let u = load_user(backend.table.as_ref(), user).await.unwrap();
        let rc = u.authenticator(InterfaceType::Recovery).expect("recovery codes were created");
        let salt = rc.config["salt"].as_str().unwrap().to_owned();
        secrets.extend(RecoveryCodes { salt: &salt, used: 0 }.codes());
        secrets.push(salt);
        // Enrolled TOTP/SMS secrets (SMS: the server-side code key) and the pending SMS code keys.
        for a in &u.authenticators {
            secrets.extend(a.config["secret"].as_str().map(str::to_owned));
        }
        secrets.extend(u.pending.iter().filter_map(|p| p.code_key.as_ref().map(|k| k.expose().to_owned())));
    }
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.lines().count() > 10, "logging was captured:\n{logs}");
    for s in secrets.iter().filter(|s| s.len() >= 6) {
        assert!(!logs.contains(s.as_str()), "a secret ({}…) appears in the logs", &s[..4]);
        for b in &error_bodies {
            assert!(!b.contains(s.as_str()), "a secret ({}…) appears in an error body: {b}", &s[..4]);
        }
    }
    assert!(error_bodies.len() >= 10);
}

/// The cookie key reaches only the functions that read it (issue 18, "secrets scoped"): in
/// `template.yaml` a function's block sets `INVITE_COOKIE_KEY` exactly when its `main.rs` asks for the
/// key (`invite_cookie_key: true`), `Globals` never sets it, and its parameter is `NoEcho`.
#[test]
fn cookie_key_only_on_the_functions_that_use_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let template = std::fs::read_to_string(root.join("template.yaml")).unwrap();
    // Top-level sections and the resources under `Resources:` (two-space keys), each with its lines.
    let mut blocks: Vec<(String, String)> = Vec::new();
    let mut section = String::new();
    for line in template.lines() {
        let top = !line.starts_with(' ') && !line.is_empty() && !line.starts_with('#');
        let resource = section == "Resources" && line.starts_with("  ") && !line.starts_with("   ");
        if top {
            section = line.trim_end_matches(':').to_owned();
            blocks.push((section.clone(), String::new()));
        } else if resource && line.trim_end().ends_with(':') && !line.trim_start().starts_with('#') {
            blocks.push((line.trim().trim_end_matches(':').to_owned(), String::new()));
        } else if let Some((_, body)) = blocks.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    let block = |name: &str| blocks.iter().find(|(n, _)| n == name).map(|(_, b)| b.as_str());
    assert!(
        !block("Globals").unwrap().contains("INVITE_COOKIE_KEY"),
        "Globals hands the cookie key to every function"
    );
    let parameters = format!("\n{}", block("Parameters").unwrap());
    let parameter: Vec<&str> = parameters
        .split("\n  InviteCookieKey:\n")
        .nth(1)
        .expect("template.yaml declares the InviteCookieKey parameter")
        .lines()
        .take_while(|l| l.starts_with("    "))
        .collect();
    let parameter = parameter.join("\n");
    assert!(parameter.contains("NoEcho: true"), "InviteCookieKey is not NoEcho:\n{parameter}");

    let mut functions = 0;
    for (name, body) in &blocks {
        // The parameters (`InviteCookieKey`, `InviteCookieKeySecret`) are referred to only where the
        // key is declared or chosen, and in the functions that read it.
        let refers = body.contains("InviteCookieKey") || body.contains("INVITE_COOKIE_KEY");
        if !body.contains("Type: AWS::Serverless::Function") {
            assert!(
                !refers || name == "Parameters" || name == "Conditions",
                "{name} refers to the cookie key:\n{body}"
            );
            continue;
        }
        let binary =
            body.lines().find_map(|l| l.trim().strip_prefix("Binary: ")).expect("BuildProperties.Binary");
        let main = std::fs::read_to_string(root.join("functions").join(binary).join("src/main.rs")).unwrap();
        let reads_key = main.contains("invite_cookie_key: true");
        assert_eq!(refers, reads_key, "{name} ({binary}): cookie key set {refers}, read {reads_key}");
        if reads_key {
            assert!(body.contains("INVITE_COOKIE_KEY: "), "{name} reads the key under another name");
        }
        functions += 1;
    }
    // accept-invite, enroll-authenticator, save-event, aggregate-events, jwt-authorizer.
    assert_eq!(functions, 5, "{:?}", blocks.iter().map(|(n, _)| n).collect::<Vec<_>>());
}
