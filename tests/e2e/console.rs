//! The operators' console (`dispatcher console`) over HTTP, against the real PostgreSQL:
//! who may read and act, where a POST may come from, the actions (the CLI's own), and the
//! files list's filters and pages.

use crate::helpers::console::{basic, http, read};
use crate::helpers::{Origin, TestApp, spawn};
use shared::fixtures::HEADER;
use std::collections::BTreeSet;

const ROW: &str = "ana@example.com,J1,-,,08/02/2013 18:30,,1,0,,0,0,,,,";
const OPERATOR: (&str, &str) = ("ana", "operator-password");
const VIEWER: (&str, &str) = ("vic", "viewer-password");

/// A world with a loaded night (one good file, two layout failures) and two users.
async fn night_with_failures() -> TestApp {
    let app = spawn(Origin::Local).await;
    let good = format!("{HEADER}\n{ROW}\n");
    let bad_a = format!("{}\n{ROW}\n", HEADER.replace("Badmail", "Bad mail"));
    let bad_b = format!("{}\n{ROW}\n", HEADER.replace("Opens", "Abiertos"));
    app.load(
        &[
            ("report_1.txt", good.as_bytes()),
            ("report_2.txt", bad_a.as_bytes()),
            ("report_3.txt", bad_b.as_bytes()),
        ],
        "2026-11-24",
    );
    app.configure_console("");
    app.console_user(OPERATOR.0, "operator", OPERATOR.1);
    app.console_user(VIEWER.0, "viewer", VIEWER.1);
    app
}

/// The `bitacora_control` rows that retry `id`.
async fn retries_of(app: &TestApp, id: i64) -> i64 {
    app.count(&format!(
        "SELECT count(*) FROM bitacora_control WHERE reprocesa_de = {id}"
    ))
    .await
}

#[tokio::test]
async fn the_console_lets_only_operators_act_and_only_from_its_own_pages_or_a_script() {
    let app = night_with_failures().await;
    let bad = app.audit_of("report_2.txt").await.id;
    let other_bad = app.audit_of("report_3.txt").await.id;
    let console = app.start_console(&[]);
    let client = http();
    let retry = console.url(&format!("/quarantine/{bad}/retry"));

    // No credentials: 401 (a script is told Basic; a browser gets the login form).
    let (status, _) = read(client.get(&console.url("/")).call());
    assert_eq!(status, 401);
    let response = client.get(&console.url("/files")).call().unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    let (status, body) = read(
        client
            .get(&console.url("/files"))
            .header("Accept", "text/html")
            .call(),
    );
    assert_eq!(status, 401);
    assert!(body.contains("name=\"password\""), "{body}");
    let (status, _) = read(client.post(&retry).send(""));
    assert_eq!(status, 401);
    // A wrong password is not a login; a password typed as the user name is not logged.
    for (user, password) in [("ana", "wrong"), (OPERATOR.1, "")] {
        let (status, _) = read(
            client
                .get(&console.url("/"))
                .header("Authorization", basic(user, password))
                .call(),
        );
        assert_eq!(status, 401);
    }

    // A viewer reads every page, but a viewer's POST is refused, and changes nothing.
    let viewer = basic(VIEWER.0, VIEWER.1);
    for path in [
        "/",
        "/files",
        "/quarantine",
        "/queue",
        "/days",
        "/actions",
        &format!("/files/{bad}"),
    ] {
        let (status, body) = read(
            client
                .get(&console.url(path))
                .header("Authorization", &viewer)
                .call(),
        );
        assert_eq!(status, 200, "{path}: {body}");
        assert!(
            !body.contains("method=\"post\" action=\"/quarantine"),
            "{path} shows an action to a viewer"
        );
    }
    let (status, body) = read(
        client
            .post(&retry)
            .header("Authorization", &viewer)
            .send(""),
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(retries_of(&app, bad).await, 0);

    // A browser's POST from another site is refused, whatever its credentials.
    let operator = basic(OPERATOR.0, OPERATOR.1);
    for (name, value) in [
        ("Sec-Fetch-Site", "cross-site"),
        ("Origin", "http://evil.example"),
    ] {
        let (status, body) = read(
            client
                .post(&retry)
                .header("Authorization", &operator)
                .header(name, value)
                .send(""),
        );
        assert_eq!(status, 403, "{name}: {body}");
    }
    assert_eq!(retries_of(&app, bad).await, 0);

    // A browser logs in by the form: a session cookie, HttpOnly and SameSite=Strict.
    let host = console.base.trim_start_matches("http://").to_string();
    let origin = console.base.clone();
    let login = client
        .post(&console.url("/login"))
        .header("Origin", &origin)
        .header("Host", &host)
        .send_form([
            ("user", OPERATOR.0),
            ("password", OPERATOR.1),
            ("next", "/quarantine"),
        ])
        .unwrap();
    assert_eq!(login.status(), 303);
    assert_eq!(login.headers()["location"], "/quarantine");
    let set_cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_string();

    // A script does not log in by the form either: its credentials go on each request.
    let (status, _) = read(
        client
            .post(&console.url("/login"))
            .send_form([("user", OPERATOR.0), ("password", OPERATOR.1)]),
    );
    assert_eq!(status, 401);

    // A script's POST with only the cookie (no Origin, no Sec-Fetch-Site) is refused.
    let (status, _) = read(client.post(&retry).header("Cookie", &cookie).send(""));
    assert_eq!(status, 401);
    assert_eq!(retries_of(&app, bad).await, 0);

    // The same cookie from the console's own page acts: a discard needs its reason.
    let discard = console.url(&format!("/quarantine/{other_bad}/discard"));
    let (status, body) = read(
        client
            .post(&discard)
            .header("Cookie", &cookie)
            .header("Sec-Fetch-Site", "same-origin")
            .send_form([("reason", "")]),
    );
    assert_eq!(status, 200);
    assert!(body.contains("needs a reason"), "{body}");
    let (status, body) = read(
        client
            .post(&discard)
            .header("Cookie", &cookie)
            .header("Sec-Fetch-Site", "same-origin")
            .send_form([("reason", "sender resends it")]),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("discarded: sender resends it"), "{body}");
    assert_eq!(
        app.count(&format!("SELECT count(*) FROM bitacora_control WHERE id = {other_bad} AND descartado_en IS NOT NULL")).await,
        1
    );

    // A script's Basic POST acts: the same retry as the CLI's; again, it says so.
    let (status, body) = read(
        client
            .post(&retry)
            .header("Authorization", &operator)
            .send(""),
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("re-enqueued as bitacora_control.id"),
        "{body}"
    );
    assert_eq!(retries_of(&app, bad).await, 1);
    let (status, body) = read(
        client
            .post(&retry)
            .header("Authorization", &operator)
            .send(""),
    );
    assert_eq!(status, 200);
    assert!(body.contains("already re-enqueued"), "{body}");
    assert_eq!(retries_of(&app, bad).await, 1);

    // Every action is recorded: who, what, how it ended (refusals included).
    let (_, actions) = read(
        client
            .get(&console.url("/actions"))
            .header("Authorization", &viewer)
            .call(),
    );
    for needle in [
        "quarantine.retry",
        "quarantine.discard",
        "ana",
        "vic",
        "refused",
        "done",
    ] {
        assert!(
            actions.contains(needle),
            "{needle} not in /actions: {actions}"
        );
    }
    let recorded = app
        .count("SELECT count(*) FROM console_actions WHERE actor = 'ana' AND via = 'basic' AND outcome = 'done'")
        .await;
    assert_eq!(recorded, 1);

    // Logout ends the session.
    let (status, _) = read(
        client
            .post(&console.url("/logout"))
            .header("Cookie", &cookie)
            .header("Sec-Fetch-Site", "same-origin")
            .send(""),
    );
    assert_eq!(status, 303);
    let (status, _) = read(
        client
            .get(&console.url("/"))
            .header("Cookie", &cookie)
            .call(),
    );
    assert_eq!(status, 401);

    // Failed logins past the allowance (5, this address's two above included) must wait
    // (429), even with the right password.
    for n in 1..=4 {
        let (status, _) = read(
            client
                .get(&console.url("/"))
                .header("Authorization", basic("vic", "nope"))
                .call(),
        );
        assert_eq!(status, if n < 4 { 401 } else { 429 }, "try {n}");
    }
    let response = client
        .get(&console.url("/"))
        .header("Authorization", &viewer)
        .call()
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let said = console.stop();
    assert!(
        !said.contains(OPERATOR.1) && !said.contains(VIEWER.1),
        "a password in the log: {said}"
    );
    assert!(
        !said.contains(&cookie[cookie.find('=').unwrap() + 1..]),
        "a session token in the log"
    );
}

#[tokio::test]
async fn read_only_consoles_and_open_addresses_are_refused_what_they_must_not_do() {
    let app = night_with_failures().await;
    let bad = app.audit_of("report_2.txt").await.id;
    // Not on the loopback without TLS or a proxy: it does not start, and says why.
    let out = app.run("dispatcher", &["console", "--listen", "0.0.0.0:2281"]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("console.tls_cert_file"), "{said}");

    // --read-only: an operator reads, but may not act.
    let console = app.start_console(&["--read-only"]);
    let operator = basic(OPERATOR.0, OPERATOR.1);
    let client = http();
    let (status, body) = read(
        client
            .get(&console.url(&format!("/files/{bad}")))
            .header("Authorization", &operator)
            .call(),
    );
    assert_eq!(status, 200);
    assert!(
        body.contains("read-only") && !body.contains("id=\"retry\""),
        "{body}"
    );
    let (status, _) = read(
        client
            .post(&console.url(&format!("/quarantine/{bad}/retry")))
            .header("Authorization", &operator)
            .send(""),
    );
    assert_eq!(status, 403);
    assert_eq!(retries_of(&app, bad).await, 0);
    let (_, health) = read(client.get(&console.url("/healthz")).call());
    assert_eq!(health, "ok\n");
    console.stop();

    // Pages read as console.read_role: given a role that may read nothing, they fail
    // (while the service's own login could read everything).
    let role = format!("vt_noread_{:08x}", fastrand::u32(..));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE ROLE {role} NOLOGIN")))
        .execute(&app.db)
        .await
        .unwrap();
    let blind = app.with_env(&[("VISITAS_CONSOLE__READ_ROLE", role.as_str())]);
    let console = blind.start_console(&[]);
    let (status, body) = read(
        client
            .get(&console.url("/files"))
            .header("Authorization", &operator)
            .call(),
    );
    assert_eq!(status, 500);
    assert!(body.contains("permission denied"), "{body}");
    console.stop();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP ROLE {role}")))
        .execute(&app.db)
        .await
        .unwrap();
    // A role the login cannot become: the console does not start, and names the grant.
    let out = app
        .with_env(&[("VISITAS_CONSOLE__READ_ROLE", "vt_no_such_role")])
        .run("dispatcher", &["console", "--listen", "127.0.0.1:0"]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("GRANT vt_no_such_role TO"), "{said}");

    // With a certificate it speaks HTTPS, and may listen on every address.
    let pgtls = crate::helpers::testbed().join("pgtls");
    let cert = pgtls.join("server.crt").display().to_string();
    let key = pgtls.join("server.key").display().to_string();
    let tls = app.with_env(&[
        ("VISITAS_CONSOLE__TLS_CERT_FILE", cert.as_str()),
        ("VISITAS_CONSOLE__TLS_KEY_FILE", key.as_str()),
    ]);
    let console = tls.start_console(&["--listen", "0.0.0.0:0"]);
    assert!(
        console.base.starts_with("https://0.0.0.0:"),
        "{}",
        console.base
    );
    let url = console.base.replace("0.0.0.0", "127.0.0.1") + "/healthz";
    let ca = pgtls.join("ca.crt");
    let out = std::process::Command::new("curl")
        .args(["-sS", "--cacert", &ca.display().to_string(), &url])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    console.stop();

    // Behind a declared reverse proxy, its header names the user; the role is the file's.
    let proxied = app.with_env(&[
        ("VISITAS_CONSOLE__TRUSTED_USER_HEADER", "X-Remote-User"),
        ("VISITAS_CONSOLE__TRUSTED_PROXIES", "[\"127.0.0.1\"]"),
    ]);
    let console = proxied.start_console(&[]);
    let (status, body) = read(
        client
            .get(&console.url("/"))
            .header("X-Remote-User", VIEWER.0)
            .call(),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<span id=\"user\">vic</span>"), "{body}");
    let (status, _) = read(
        client
            .get(&console.url("/"))
            .header("X-Remote-User", "mallory")
            .call(),
    );
    assert_eq!(status, 403);
    let (status, _) = read(
        client
            .post(&console.url(&format!("/quarantine/{bad}/retry")))
            .header("X-Remote-User", VIEWER.0)
            .header("Sec-Fetch-Site", "same-origin")
            .send(""),
    );
    assert_eq!(status, 403, "a viewer, however named");
    // A script's POST is believed on its Basic credentials only, not on the header.
    app.console_user("root", "operator", "root-password");
    let (status, _) = read(
        client
            .post(&console.url(&format!("/quarantine/{bad}/retry")))
            .header("X-Remote-User", "root")
            .send(""),
    );
    assert_eq!(status, 401);
    assert_eq!(retries_of(&app, bad).await, 0);
    console.stop();
}

/// Inserts `n` finished files (items and audit rows): every third a layout failure, the
/// others loaded, business days 2026-11-01 … 2026-11-10 in turn.
async fn insert_files(app: &TestApp, n: i64) {
    sqlx::query(
        "INSERT INTO work_items (origin, source_name, source_path, file_name, size_bytes, mtime, state, claim_token, business_date)
         SELECT 'file:///srv/in', 'report_' || g || '.txt', '/srv/in/report_' || g || '.txt', 'report_' || g || '.txt', 1, now(),
                CASE WHEN g % 3 = 0 THEN 'failed' ELSE 'done' END, g, date '2026-11-01' + (g % 10)::int
         FROM generate_series(1, $1::bigint) g",
    )
    .bind(n)
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO bitacora_control (work_item_id, archivo, ruta_origen, estatus, fecha_negocio, sha256,
                                       registros_totales, registros_validos, registros_error, mensaje_error)
         SELECT w.id, w.file_name, w.source_path,
                CASE WHEN w.state = 'failed' THEN 'FALLO_LAYOUT' ELSE 'COMPLETADO' END, w.business_date,
                CASE WHEN w.state = 'done' THEN lpad(to_hex(w.id), 64, '0') END,
                CASE WHEN w.state = 'done' THEN 10 END, CASE WHEN w.state = 'done' THEN 10 END,
                CASE WHEN w.state = 'done' THEN 0 END,
                CASE WHEN w.state = 'failed' THEN 'line 1, column 3: found `Bad mail`' END
         FROM work_items w ORDER BY w.id",
    )
    .execute(&app.db)
    .await
    .unwrap();
}

/// The ids a files page lists, in order.
fn listed(body: &str) -> Vec<i64> {
    let row = regex::Regex::new(r#"<tr><td class="num"><a href="/files/(\d+)">"#).unwrap();
    row.captures_iter(body)
        .map(|c| c[1].parse().unwrap())
        .collect()
}

/// The `before=` / `after=` link of a page, if any.
fn link(body: &str, rel: &str) -> Option<String> {
    let re = regex::Regex::new(&format!(r#"rel="{rel}" href="([^"]+)""#)).unwrap();
    re.captures(body).map(|c| c[1].replace("&amp;", "&"))
}

#[tokio::test]
async fn the_files_list_filters_by_the_query_string_and_pages_by_keyset() {
    let app = spawn(Origin::Local).await;
    insert_files(&app, 600).await;
    app.configure_console("");
    app.console_user(VIEWER.0, "viewer", VIEWER.1);
    let console = app.start_console(&[]);
    let client = http();
    let viewer = basic(VIEWER.0, VIEWER.1);
    let get = |path: &str| {
        read(
            client
                .get(&console.url(path))
                .header("Authorization", &viewer)
                .call(),
        )
    };

    // Layout failures of 2026-11-03 … 2026-11-05, walked page by page.
    let expected: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM bitacora_control WHERE estatus = 'FALLO_LAYOUT'
           AND fecha_negocio BETWEEN '2026-11-03' AND '2026-11-05' ORDER BY id DESC",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(expected.len() > 50, "{}", expected.len());
    let mut seen = Vec::new();
    let mut path = "/files?status=FALLO_LAYOUT&from=2026-11-03&to=2026-11-05".to_string();
    let mut pages = Vec::new();
    loop {
        let (status, body) = get(&path);
        assert_eq!(status, 200, "{body}");
        let ids = listed(&body);
        assert!(ids.len() <= 50);
        seen.extend(ids);
        pages.push(body.clone());
        match link(&body, "next") {
            Some(next) => path = next,
            None => break,
        }
    }
    assert_eq!(seen, expected, "every matching file once, newest first");
    assert!(pages.len() >= 2, "the filtered list spans pages");
    // Back from the last page: the page before it again.
    let back = link(pages.last().unwrap(), "prev").unwrap();
    let (_, body) = get(&back);
    assert_eq!(listed(&body), listed(&pages[pages.len() - 2]));
    // Two pages of everything: 50 newest, then the next 50.
    let (_, first) = get("/files");
    let all: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM bitacora_control ORDER BY id DESC LIMIT 100")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(listed(&first), all[..50]);
    let (_, second) = get(&link(&first, "next").unwrap());
    assert_eq!(listed(&second), all[50..100]);

    // Name search (LIKE's wildcards taken literally), and unresolved failures only.
    let (_, body) = get("/files?q=report_24");
    let ids: BTreeSet<i64> = listed(&body).into_iter().collect();
    let want: BTreeSet<i64> =
        sqlx::query_scalar("SELECT id FROM bitacora_control WHERE archivo LIKE '%report\\_24%'")
            .fetch_all(&app.db)
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(ids, want);
    let (_, body) = get("/files?q=100%25");
    assert!(listed(&body).is_empty(), "a % is not a wildcard");
    // report_3 failed; loading it later resolves it.
    sqlx::query(
        "WITH w AS (INSERT INTO work_items (origin, source_name, source_path, file_name, size_bytes, mtime, state, claim_token, business_date)
                    VALUES ('file:///srv/in', 'report_3.txt', '/srv/in/report_3.txt', 'report_3.txt', 1, now(), 'done', 100000, '2026-11-11')
                    RETURNING id)
         INSERT INTO bitacora_control (work_item_id, archivo, ruta_origen, estatus, fecha_negocio, sha256,
                                       registros_totales, registros_validos, registros_error)
         SELECT id, 'report_3.txt', '/srv/in/report_3.txt', 'COMPLETADO', '2026-11-11', repeat('f', 64), 1, 1, 0 FROM w",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let (_, body) = get("/files?status=FALLO_LAYOUT&q=report_3.txt");
    assert_eq!(listed(&body).len(), 1, "report_3.txt failed once");
    let (_, body) = get("/files?status=FALLO_LAYOUT&q=report_3.txt&unresolved=1");
    assert!(listed(&body).is_empty(), "a later load resolved it");
    let (_, body) = get("/files?unresolved=1&q=report_6.txt");
    assert_eq!(listed(&body).len(), 1, "report_6.txt is still unresolved");
    // Other feeds hold nothing yet; bad parameters are named.
    let (_, body) = get("/files?feed=otro");
    assert!(listed(&body).is_empty());
    let (status, body) = get("/files?status=LOADED");
    assert_eq!(status, 400);
    assert!(body.contains("status: `LOADED`"), "{body}");
    let (status, _) = get("/files?from=2026-13-01");
    assert_eq!(status, 400);
}

#[tokio::test]
async fn bulk_actions_show_the_count_act_within_the_cap_and_refuse_a_changed_set() {
    let app = spawn(Origin::Local).await;
    insert_files(&app, 12).await;
    app.configure_console("bulk_cap = 3\n");
    app.console_user(OPERATOR.0, "operator", OPERATOR.1);
    let console = app.start_console(&[]);
    let client = http();
    let operator = basic(OPERATOR.0, OPERATOR.1);
    // 4 layout failures match: past the cap of 3, no confirmation is offered.
    let (status, body) = read(
        client
            .get(&console.url("/files/bulk?do=discard-matching&status=FALLO_LAYOUT"))
            .header("Authorization", &operator)
            .call(),
    );
    assert_eq!(status, 200);
    assert!(body.contains("more than 3 files matching"), "{body}");
    assert!(!body.contains("bulk-submit"), "{body}");
    // A narrower filter: 2 match (days 03 and 06 → ids 3 and 6? whatever they are).
    let filter = "status=FALLO_LAYOUT&from=2026-11-01&to=2026-11-06";
    let matching = app
        .count("SELECT count(*) FROM bitacora_control WHERE estatus = 'FALLO_LAYOUT' AND fecha_negocio <= '2026-11-06'")
        .await;
    assert!((1..=3).contains(&matching), "{matching}");
    let (_, body) = read(
        client
            .get(&console.url(&format!("/files/bulk?do=discard-matching&{filter}")))
            .header("Authorization", &operator)
            .call(),
    );
    assert!(
        body.contains(&format!("<strong>{matching}</strong> file(s) matching")),
        "{body}"
    );
    // Confirmed with a stale count: nothing is done, the new count is shown.
    let mut form: Vec<(&str, String)> = vec![
        ("do", "discard-matching".into()),
        ("status", "FALLO_LAYOUT".into()),
        ("from", "2026-11-01".into()),
        ("to", "2026-11-06".into()),
        ("reason", "resent".into()),
        ("expected", (matching + 1).to_string()),
    ];
    let send = |form: &Vec<(&str, String)>| {
        read(
            client
                .post(&console.url("/files/bulk"))
                .header("Authorization", &operator)
                .send_form(form.iter().map(|(k, v)| (*k, v.as_str()))),
        )
    };
    let (status, body) = send(&form);
    assert_eq!(status, 200);
    assert!(body.contains("nothing was done yet"), "{body}");
    // The right count but not the rows shown: confirmed again, nothing done.
    form.last_mut().unwrap().1 = matching.to_string();
    form.push(("shown", "1,2,3".into()));
    let (_, body) = send(&form);
    assert!(body.contains("nothing was done yet"), "{body}");
    form.pop();
    assert_eq!(
        app.count("SELECT count(*) FROM bitacora_control WHERE descartado_en IS NOT NULL")
            .await,
        0
    );
    // With the count and the rows it showed: each matching file discarded, one by one,
    // each recorded.
    let shown: Vec<String> = sqlx::query_scalar::<_, i64>(
        "SELECT id FROM bitacora_control WHERE estatus = 'FALLO_LAYOUT' AND fecha_negocio <= '2026-11-06' ORDER BY id DESC",
    )
    .fetch_all(&app.db)
    .await
    .unwrap()
    .iter()
    .map(|id| id.to_string())
    .collect();
    form.push(("shown", shown.join(",")));
    let (status, body) = send(&form);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!("{matching} of {matching} file(s) done")),
        "{body}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM bitacora_control WHERE descartado_en IS NOT NULL")
            .await,
        matching
    );
    assert_eq!(
        app.count("SELECT count(*) FROM console_actions WHERE action = 'quarantine.discard (bulk)' AND outcome = 'done'").await,
        matching
    );
    // Selected rows past the cap are refused whole.
    let (_, body) = read(
        client
            .get(&console.url("/files/bulk?do=retry-selected&id=1&id=2&id=3&id=4"))
            .header("Authorization", &operator)
            .call(),
    );
    assert!(body.contains("more than 3 files selected"), "{body}");
}

#[tokio::test]
async fn days_reload_from_their_zip_when_the_date_is_typed_and_items_are_taken_back() {
    let app = night_with_failures().await;
    app.run_ok("dispatcher", &["close", "--as-of", "2026-11-24"]);
    let loaded = app.audit_of("report_1.txt").await;
    let console = app.start_console(&[]);
    let client = http();
    let operator = basic(OPERATOR.0, OPERATOR.1);
    let get = |path: &str| {
        read(
            client
                .get(&console.url(path))
                .header("Authorization", &operator)
                .call(),
        )
    };

    // The day is listed with its zip, which downloads.
    let (_, days) = get("/days");
    assert!(days.contains("backup_20261124.zip"), "{days}");
    let mut zip = client
        .get(&console.url("/days/2026-11-24/zip"))
        .header("Authorization", &operator)
        .call()
        .unwrap();
    assert_eq!(zip.status(), 200);
    let bytes = zip.body_mut().read_to_vec().unwrap();
    assert!(bytes.starts_with(b"PK"), "a zip");
    let (status, _) = get("/days/2026-11-24x/zip");
    assert_eq!(status, 404);

    // A reload needs the date typed: otherwise nothing is enqueued.
    let reload = console.url("/days/2026-11-24/reload");
    let items = || app.count("SELECT count(*) FROM work_items");
    let before = items().await;
    let (status, body) = read(
        client
            .post(&reload)
            .header("Authorization", &operator)
            .send_form([("confirm", "2026-11-25")]),
    );
    assert_eq!(status, 200);
    assert!(body.contains("type the date 2026-11-24"), "{body}");
    assert_eq!(items().await, before);
    let (status, body) = read(
        client
            .post(&reload)
            .header("Authorization", &operator)
            .send_form([("confirm", "2026-11-24")]),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("reload: 1 file(s) enqueued"), "{body}");
    assert_eq!(items().await, before + 1);
    // The performers on this host load it: its content was loaded, so DUPLICADO.
    app.perform("2026-11-24");
    let again = app.audit().await.into_iter().last().unwrap();
    assert_eq!(
        (again.archivo.as_str(), again.estatus.as_str()),
        ("report_1.txt", "DUPLICADO")
    );
    assert_ne!(again.id, loaded.id);

    // An item whose performer is gone is taken back at once; a second time, nothing to do.
    let item: i64 = sqlx::query_scalar(
        "UPDATE work_items SET state = 'running', locked_by = 'gone-host:1:1', locked_until = now() + interval '1 hour',
                claim_token = nextval('work_items_claim_token_seq')
         WHERE id = (SELECT work_item_id FROM bitacora_control WHERE id = $1) RETURNING id",
    )
    .bind(app.audit_of("report_2.txt").await.id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    let (_, queue) = get("/queue");
    assert!(
        queue.contains("gone-host:1:1") && queue.contains(&format!("/queue/{item}/take-back")),
        "{queue}"
    );
    let take_back = console.url(&format!("/queue/{item}/take-back"));
    let (status, body) = read(
        client
            .post(&take_back)
            .header("Authorization", &operator)
            .send(""),
    );
    assert_eq!(status, 200);
    assert!(body.contains("lease ended"), "{body}");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM work_items WHERE id = {item} AND state = 'pending'"
        ))
        .await,
        1
    );
    let (_, body) = read(
        client
            .post(&take_back)
            .header("Authorization", &operator)
            .send(""),
    );
    assert!(body.contains("is not running; nothing to do"), "{body}");
    let (_, actions) = get("/actions");
    for needle in ["days.reload", "queue.take-back", "refused"] {
        assert!(actions.contains(needle), "{needle}: {actions}");
    }
}

#[tokio::test]
async fn rejected_rows_download_as_csv_a_spreadsheet_cannot_run() {
    let app = spawn(Origin::Local).await;
    // A hostile sender's rows: each a formula to a spreadsheet, each rejected for its e-mail.
    let formulas = ["=1+2", "+1", "-1", "@SUM(1)"];
    let mut file = format!("{HEADER}\n{ROW}\n");
    for f in formulas {
        file.push_str(&ROW.replacen("ana@example.com", f, 1));
        file.push('\n');
    }
    app.load(&[("report_1.txt", file.as_bytes())], "2026-11-24");
    app.configure_console("");
    app.console_user(VIEWER.0, "viewer", VIEWER.1);
    let id = app.audit_of("report_1.txt").await.id;
    let console = app.start_console(&[]);

    let (status, csv) = read(
        http()
            .get(&console.url(&format!("/files/{id}/rejected.csv")))
            .header("Authorization", basic(VIEWER.0, VIEWER.1))
            .call(),
    );
    assert_eq!(status, 200, "{csv}");
    let lines: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(lines.len(), formulas.len(), "{csv}");
    for (line, formula) in lines.iter().zip(formulas) {
        // The original row, as text: quoted (it holds commas) and led by an apostrophe.
        assert!(line.contains(&format!(",\"'{formula},J1,")), "{line}");
        // No cell of it begins with a formula character.
        for cell in line.split(',') {
            let cell = cell.trim_start_matches('"');
            assert!(
                !cell.starts_with(['=', '+', '@']) && !cell.starts_with("-1"),
                "{line}"
            );
        }
    }
    // The database keeps what the sender sent.
    assert_eq!(
        app.count("SELECT count(*) FROM errores WHERE fila_original LIKE '=1+2,%'")
            .await,
        1
    );
}
