//! The console in a real headless Chromium (Debian's, from `ops/testbed-browser.sh`,
//! driven over CDP): after a night with a layout failure, an operator logs in, filters the
//! files to `FALLO_LAYOUT`, opens the file, reads its message, fixes its quarantined copy
//! as the runbook says, retries it and sees the new load end `COMPLETADO`; a viewer sees
//! no action anywhere. Every page is photographed under the test's output directory.

use crate::helpers::{Origin, TestApp, spawn, testbed};
use chromiumoxide::Page;
use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::page::ScreenshotParams;
use futures_util::StreamExt;
use shared::fixtures::HEADER;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ROW: &str = "ana@example.com,J1,-,,08/02/2013 18:30,,1,0,,0,0,,,,";
const ROW2: &str = "bea@example.com,J2,-,,09/02/2013 10:00,,2,0,,1,0,,,,";
const ROW3: &str = "cy@example.com,J3,-,,10/02/2013 11:00,,1,0,,0,0,,,,";

/// A headless Chromium with the test bed's flags and a profile of its own.
struct Chromium {
    browser: Browser,
    handler: tokio::task::JoinHandle<()>,
    _profile: PathBuf,
}

impl Chromium {
    async fn launch(home: &Path) -> Chromium {
        let dir = testbed().join("browser");
        let flags = std::fs::read_to_string(dir.join("flags"))
            .expect("ops/testbed-browser.sh has run (it writes the flags Chromium needs)");
        let profile = home.join(format!("chromium-{}", fastrand::u32(..)));
        std::fs::create_dir_all(&profile).unwrap();
        let config = BrowserConfig::builder()
            .chrome_executable("/usr/bin/chromium")
            .no_sandbox()
            .args(flags.lines().filter(|l| !l.trim().is_empty()))
            .user_data_dir(&profile)
            .window_size(1280, 900)
            .viewport(None)
            .env("TMPDIR", profile.display().to_string())
            .launch_timeout(Duration::from_secs(60))
            .request_timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let (browser, mut events) = Browser::launch(config).await.expect("Chromium starts");
        let handler = tokio::spawn(async move { while events.next().await.is_some() {} });
        Chromium {
            browser,
            handler,
            _profile: profile,
        }
    }

    async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }
}

/// Where this test's screenshots go.
fn shots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shoot(page: &Page, name: &str) {
    let path = shots().join(format!("{name}.png"));
    page.save_screenshot(ScreenshotParams::builder().full_page(true).build(), &path)
        .await
        .unwrap();
}

/// Evaluates `js` once the page's document is ready (a navigation may still be under
/// way: its old context is gone before the new one exists).
async fn eval<T: serde::de::DeserializeOwned>(page: &Page, js: &str) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = page
            .evaluate("document.readyState")
            .await
            .ok()
            .and_then(|r| r.into_value::<String>().ok());
        if ready.as_deref() == Some("complete")
            && let Ok(value) = page
                .evaluate(js)
                .await
                .and_then(|r| Ok(r.into_value::<T>()?))
        {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "the page never got ready for {js}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The page's text (what a person reads).
async fn text(page: &Page) -> String {
    eval(page, "document.body.innerText").await
}

/// The page's address.
async fn location(page: &Page) -> String {
    eval(page, "location.href").await
}

/// Clicks `selector` and waits until another page has loaded.
async fn click(page: &Page, selector: &str) {
    let before = location(page).await;
    page.find_element(selector)
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while location(page).await == before {
        assert!(
            Instant::now() < deadline,
            "{selector} led nowhere from {before}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _: String = eval(page, "document.readyState").await;
}

async fn goto(page: &Page, url: &str) {
    page.goto(url).await.unwrap();
    let _: String = eval(page, "document.readyState").await;
}

/// Logs in by the form.
async fn log_in(page: &Page, base: &str, user: &str, password: &str) {
    goto(page, &format!("{base}/login")).await;
    page.find_element("#login-user")
        .await
        .unwrap()
        .click()
        .await
        .unwrap()
        .type_str(user)
        .await
        .unwrap();
    page.find_element("#login-password")
        .await
        .unwrap()
        .click()
        .await
        .unwrap()
        .type_str(password)
        .await
        .unwrap();
    click(page, "#login-submit").await;
}

/// Whether any element matches `selector`.
async fn has(page: &Page, selector: &str) -> bool {
    eval(
        page,
        &format!("document.querySelector({selector:?}) !== null"),
    )
    .await
}

/// A night like the demo's, the performer left serving, the console running.
async fn demo_night() -> (TestApp, crate::helpers::Running) {
    let app = spawn(Origin::Sftp).await;
    let good = format!("{HEADER}\n{ROW}\n{ROW2}\n");
    let renamed = format!(
        "{}\n{ROW3}\n{ROW2}\n",
        HEADER.replace("Badmail", "Bad mail")
    );
    let with_errors = format!("{HEADER}\n{ROW}\nnot-an-email,J3,-,,xx,,1,0,,0,0,,,,\n");
    for (name, body) in [
        ("report_1.txt", &good),
        ("report_13.txt", &renamed),
        ("report_4.txt", &with_errors),
    ] {
        app.put(name, body.as_bytes());
    }
    let performer = crate::helpers::Running::new(app.spawn_performer("2026-11-24"));
    app.run_ok("dispatcher", &["run", "--as-of", "2026-11-24"]);
    app.configure_console("refresh_secs = 600\n");
    app.console_user("ana", "operator", "operator-password");
    app.console_user("vic", "viewer", "viewer-password");
    (app, performer)
}

#[tokio::test]
async fn an_operator_retries_a_fixed_layout_failure_and_a_viewer_sees_no_action() {
    let (app, performer) = demo_night().await;
    let bad = app.audit_of("report_13.txt").await;
    assert_eq!(bad.estatus, "FALLO_LAYOUT");
    let console = app.start_console(&[]);
    let chromium = Chromium::launch(&app.home).await;
    let page = chromium.browser.new_page("about:blank").await.unwrap();

    // Log in; the overview shows the night.
    goto(&page, &format!("{}/login", console.base)).await;
    shoot(&page, "login").await;
    log_in(&page, &console.base, "ana", "operator-password").await;
    let overview = text(&page).await;
    assert!(
        overview.contains("Last night") && overview.contains("FALLO_LAYOUT"),
        "{overview}"
    );
    assert!(overview.contains("ana (operator)"), "{overview}");
    shoot(&page, "overview").await;

    // The refresh switch is live, and pauses.
    assert!(
        has(&page, "#refresh-toggle:not([hidden])").await,
        "the script runs"
    );
    page.find_element("#refresh-toggle")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(text(&page).await.contains("Resume auto-refresh"));

    // Files, filtered to FALLO_LAYOUT by the form: the filter is in the URL.
    goto(&page, &format!("{}/files", console.base)).await;
    let _: String = eval(
        &page,
        "document.getElementById('f-status').value = 'FALLO_LAYOUT'",
    )
    .await;
    click(&page, "#f-apply").await;
    let url = location(&page).await;
    assert!(url.contains("status=FALLO_LAYOUT"), "{url}");
    let listed = text(&page).await;
    assert!(
        listed.contains("report_13.txt") && !listed.contains("report_1.txt\t"),
        "{listed}"
    );
    shoot(&page, "files-fallo-layout").await;

    // Open it: its message names what to fix.
    click(&page, "#files tbody td:nth-child(3) a").await;
    let message: String = eval(&page, "document.getElementById('file-message').innerText").await;
    assert!(
        message.contains("Bad mail") && message.contains("Badmail"),
        "{message}"
    );
    shoot(&page, "file-fallo-layout").await;

    // Fix the quarantined copy (runbook, "A layout failure"): the contract's header back.
    let copy = bad.ruta_backup.clone().unwrap();
    let fixed = std::fs::read_to_string(&copy)
        .unwrap()
        .replacen("Bad mail", "Badmail", 1);
    std::fs::write(&copy, fixed).unwrap();
    click(&page, "#retry").await;
    let said = text(&page).await;
    assert!(
        said.contains("re-enqueued as bitacora_control.id"),
        "{said}"
    );
    shoot(&page, "retried").await;

    // The new load's page: the performer loads it; reloading the page shows COMPLETADO.
    click(&page, "#next").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status: String = eval(&page, "document.getElementById('file-status').innerText").await;
        if status.contains("COMPLETADO") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {status}: {}",
            performer.text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let here = location(&page).await;
        goto(&page, &here).await;
    }
    assert!(
        text(&page)
            .await
            .contains(&format!("bitacora_control.id = {}", bad.id)),
        "it retries the failure"
    );
    shoot(&page, "file-completado").await;

    // The other pages, photographed; the action is on record.
    for (path, name) in [
        ("/quarantine", "quarantine"),
        ("/queue", "queue"),
        ("/days", "days"),
        ("/actions", "actions"),
    ] {
        goto(&page, &format!("{}{path}", console.base)).await;
        shoot(&page, name).await;
    }
    assert!(text(&page).await.contains("quarantine.retry"));
    let with_errors = app.audit_of("report_4.txt").await;
    goto(&page, &format!("{}/files/{}", console.base, with_errors.id)).await;
    assert!(
        text(&page).await.contains("EMAIL_INVALIDO"),
        "its rejected record is listed"
    );
    shoot(&page, "file-rejected-rows").await;
    // All of them as CSV.
    let mut csv = crate::helpers::console::http()
        .get(&console.url(&format!("/files/{}/rejected.csv", with_errors.id)))
        .header(
            "Authorization",
            crate::helpers::console::basic("ana", "operator-password"),
        )
        .call()
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = csv.body_mut().read_to_string().unwrap();
    assert!(
        csv.starts_with("linea,tipo_error,detalle,fila_original\n"),
        "{csv}"
    );
    assert!(
        csv.contains("3,EMAIL_INVALIDO,") && csv.contains("not-an-email"),
        "{csv}"
    );

    // Log out; a viewer logs in and finds no action on any page.
    click(&page, "header form button").await;
    log_in(&page, &console.base, "vic", "viewer-password").await;
    for path in [
        "/".to_string(),
        "/files?status=FALLO_LAYOUT".to_string(),
        format!("/files/{}", bad.id),
        "/quarantine".to_string(),
        "/queue".to_string(),
        "/days".to_string(),
    ] {
        goto(&page, &format!("{}{path}", console.base)).await;
        for selector in [
            "form[method=post]:not([action='/logout'])",
            "#bulk",
            "#retry",
            "input[type=checkbox][name=id]",
        ] {
            assert!(
                !has(&page, selector).await,
                "a viewer sees {selector} on {path}"
            );
        }
    }
    goto(&page, &format!("{}/files", console.base)).await;
    shoot(&page, "viewer-files").await;

    chromium.close().await;
    console.stop();
    let _ = performer.terminate();
    eprintln!("screenshots in {}", shots().display());
}
