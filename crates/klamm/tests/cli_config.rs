//! `klamm serve` refuses bad configuration before opening anything: exit code 2 and a
//! message naming the key and where the value came from. `klamm config` round-trips.

use std::process::Command;

fn klamm() -> Command {
    Command::new(env!("CARGO_BIN_EXE_klamm"))
}

/// Arguments, environment, and what stderr must mention.
type Case = (Vec<String>, Vec<(&'static str, &'static str)>, &'static str);

#[test]
fn invalid_values_exit_2_naming_the_key_before_opening_anything() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bad_toml = dir.path().join("bad.toml");
    std::fs::write(&bad_toml, "log.retention.hours = [1\n").unwrap();
    let cases: Vec<Case> = vec![
        (
            vec!["--set".into(), "log.segment.bytes=abc".into()],
            vec![],
            "log.segment.bytes (from --set)",
        ),
        (
            vec![],
            vec![("KLAMM_NUM_PARTITIONS", "zero")],
            "num.partitions (from env KLAMM_NUM_PARTITIONS)",
        ),
        (
            vec!["--config".into(), bad_toml.display().to_string()],
            vec![],
            "line 2",
        ),
        (
            vec!["--listeners".into(), "nonsense".into()],
            vec![],
            "listeners",
        ),
        // A misconfigured quorum names the key at fault.
        (
            vec![
                "--set".into(),
                "controller.quorum.voters=1@127.0.0.1:9093,1@127.0.0.1:9094".into(),
            ],
            vec![],
            "controller.quorum.voters (from --set)",
        ),
        (
            vec![
                "--listeners".into(),
                "PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0".into(),
                "--set".into(),
                "controller.quorum.voters=2@127.0.0.1:9093".into(),
            ],
            vec![],
            "to include node.id 1",
        ),
        (
            vec!["--set".into(), "process.roles=broker".into()],
            vec![],
            "process.roles (from --set)",
        ),
        // A valid quorum of three: refused until cluster mode exists, saying so.
        (
            vec![
                "--listeners".into(),
                "PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0".into(),
                "--set".into(),
                "controller.quorum.voters=1@127.0.0.1:9093,2@127.0.0.1:9094,3@127.0.0.1:9095"
                    .into(),
            ],
            vec![],
            "cluster mode is not built yet",
        ),
    ];
    for (args, env, expected) in cases {
        let out = klamm()
            .arg("serve")
            .arg("--data-dir")
            .arg(&data)
            .args(&args)
            .envs(env)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?}: expected {expected:?} in {stderr}"
        );
        assert!(
            !data.exists(),
            "{args:?}: the data dir was created despite the bad config"
        );
    }
}

#[test]
fn print_default_is_the_example_file_and_validates() {
    let out = klamm().args(["config", "print-default"]).output().unwrap();
    assert!(out.status.success());
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/klamm.toml");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        std::fs::read_to_string(example).unwrap()
    );
    let out = klamm()
        .args(["config", "validate", example])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
