//! The example configuration shipped in `deploy/` parses (unknown keys are refused) and validates,
//! so the systemd unit's `vaultgate config check` passes on it.

use gateway::config::Config;

#[test]
fn example_config_parses_and_validates() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/vaultgate.example.toml");
    let cfg = Config::from_file(&path).expect("example config parses");
    cfg.validate().expect("example config validates");
    assert_eq!(cfg.s3_addr, "127.0.0.1:9000");
    assert_eq!(cfg.admin_addr, "127.0.0.1:9001");
    assert_eq!(
        cfg.backend.as_deref(),
        Some("file:///var/lib/vaultgate/objects")
    );
}

#[test]
fn a_misspelt_key_is_refused() {
    let err = Config::from_toml("data_dri = \"/tmp\"\n").expect_err("unknown key refused");
    assert!(
        err.to_string().contains("data_dri"),
        "error names the key: {err}"
    );
}
