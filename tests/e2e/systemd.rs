//! The systemd units in `ops/systemd/` pass `systemd-analyze verify`.

use std::process::Command;

#[test]
fn units_pass_systemd_analyze_verify() {
    let units = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ops/systemd");
    let scratch = std::env::temp_dir().join(format!("visitas-units-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    // verify checks that ExecStart= exists: point it at the binaries just built.
    let bin_dir = crate::helpers::bin_dir();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&units).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::write(
            scratch.join(&name),
            text.replace("/usr/local/bin/", &format!("{}/", bin_dir.display())),
        )
        .unwrap();
        names.push(name);
    }
    names.sort();
    assert_eq!(
        names,
        [
            "visitas-check.service",
            "visitas-check.timer",
            "visitas-dispatcher.service",
            "visitas-dispatcher.timer",
            "visitas-performer.service"
        ]
    );
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&names)
        .current_dir(&scratch)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
    std::fs::remove_dir_all(&scratch).unwrap();
}
