//! `vaultgate keys backup --out FILE` / `keys restore --in FILE`: the key material of a data dir
//! sealed under a passphrase (`keys::backup`, docs/FORMAT.md "Key backup file"). What is backed
//! up: the files of [`KEY_FILES`] present in the data dir, and for a KMS provider its key id (the
//! KMS URL without credentials: KMS keys never leave KMS). A master key given by
//! `VAULTGATE_MASTER_KEY` (or a systemd credential) is the operator's already and is not copied.
//!
//! Restore writes into the data dir under its lock (never under a running gateway), each file
//! with mode 0600 through a temporary file and a rename; an existing file with other bytes is
//! kept unless `--force`, and then renamed to `<name>.replaced-<ms>` rather than deleted.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use base64::Engine;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::settings::{Settings, init_logging};

/// The data dir files a backup holds (nothing else is ever written by a restore).
pub const KEY_FILES: &[&str] = &[
    keys::KEY_FILE_NAME,
    gateway::ops::keys::ADMIN_SECRET_FILE,
    "evidence.key",
];

/// The sealed payload (JSON). Its Debug lists file names only.
#[derive(Serialize, Deserialize, Default)]
struct Payload {
    /// when the backup was made, ms since the epoch
    created_ms: i64,
    /// file name -> base64 of its bytes
    files: BTreeMap<String, String>,
    /// the KMS URL without credentials, when the provider is KMS
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kms: Option<String>,
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payload")
            .field("created_ms", &self.created_ms)
            .field("files", &self.files.keys().collect::<Vec<_>>())
            .field("kms", &self.kms)
            .finish()
    }
}

/// The message of a backup error without the keys crate's category prefix.
fn plain(e: keys::Error) -> String {
    match e {
        keys::Error::Integrity(m) | keys::Error::Format(m) => m,
        other => other.to_string(),
    }
}

fn passphrase(from_stdin: bool, confirm: bool) -> anyhow::Result<Zeroizing<String>> {
    use std::io::IsTerminal;
    let p = if from_stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the passphrase from stdin")?;
        Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned())
    } else if std::io::stdin().is_terminal() {
        let p = Zeroizing::new(
            rpassword::prompt_password("passphrase: ").context("reading the passphrase")?,
        );
        if confirm {
            let again = Zeroizing::new(
                rpassword::prompt_password("passphrase again: ")
                    .context("reading the passphrase")?,
            );
            if *again != *p {
                bail!("the two passphrases differ");
            }
        }
        p
    } else {
        bail!("no passphrase: use --passphrase-stdin or run on a terminal for the prompt");
    };
    if p.is_empty() {
        bail!("the passphrase is empty");
    }
    Ok(p)
}

pub fn backup(settings: Settings, out: &Path, from_stdin: bool) -> anyhow::Result<ExitCode> {
    let cfg = settings.load()?;
    init_logging(&cfg.log_level);
    if out.exists() {
        bail!(
            "{} exists; refusing to overwrite a backup (choose another --out)",
            out.display()
        );
    }
    let kc = cfg.key_config();
    let mut payload = Payload {
        created_ms: gateway::index::now_ms(),
        kms: kc.kms_url.as_deref().map(gateway::config::redact_url),
        ..Default::default()
    };
    for name in KEY_FILES {
        let path = cfg.data_dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                payload.files.insert(
                    (*name).to_owned(),
                    base64::engine::general_purpose::STANDARD.encode(&*bytes),
                );
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => bail!("cannot read {}: {e}", path.display()),
        }
    }
    if payload.files.is_empty() && payload.kms.is_none() {
        bail!(
            "nothing to back up in {}: no key file, no sealed admin secret, no evidence key, no KMS configured",
            cfg.data_dir.display()
        );
    }
    let pass = passphrase(from_stdin, true)?;
    let json = Zeroizing::new(serde_json::to_vec(&payload)?);
    for v in payload.files.values_mut() {
        zeroize::Zeroize::zeroize(v);
    }
    let sealed = keys::backup::seal_backup(&pass, &json, keys::backup::ITERATIONS)
        .map_err(|e| anyhow::anyhow!("{}", plain(e)))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("cannot create {}", out.display()))?;
    f.write_all(&sealed)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", out.display()))?;
    let mut what: Vec<String> = payload.files.keys().cloned().collect();
    if let Some(k) = &payload.kms {
        what.push(format!("KMS key id {k}"));
    }
    println!(
        "key backup written to {} (mode 0600): {}{}",
        out.display(),
        what.join(", "),
        if kc.master_key_hex.is_some() {
            "; the master key given by VAULTGATE_MASTER_KEY is not in it (keep it in your secret store)"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("restore.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}

pub fn restore(
    settings: Settings,
    input: &Path,
    from_stdin: bool,
    force: bool,
) -> anyhow::Result<ExitCode> {
    let cfg = settings.load()?;
    init_logging(&cfg.log_level);
    let (payload, files) = open_backup_files(input, from_stdin)?;
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create data dir {}", cfg.data_dir.display()))?;
    let _lock = gateway::lock::lock_data_dir(&cfg.data_dir, "vaultgate keys restore")?;
    // refuse before writing anything
    let differ = differing_files(&cfg.data_dir, &files)?;
    if !differ.is_empty() && !force {
        bail!(
            "{} exist with other keys than the backup's; nothing restored (add --force to replace them: the current files are kept as <name>.replaced-<ms>)",
            differ
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let (restored, unchanged) = write_files(&cfg.data_dir, &files, &differ)?;
    println!(
        "restored into {}: {}{}{}",
        cfg.data_dir.display(),
        if restored.is_empty() {
            "nothing new".to_owned()
        } else {
            restored.join(", ")
        },
        if unchanged.is_empty() {
            String::new()
        } else {
            format!(" (already identical: {})", unchanged.join(", "))
        },
        payload
            .kms
            .as_deref()
            .map(|k| format!(
                "; the keys are in KMS: configure VAULTGATE_KMS={k} (with its credentials)"
            ))
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

/// A restore's key files: the backup at `input` opened with the passphrase, each file a key
/// file this version knows, decoded (nothing is written yet).
type KeyFiles = Vec<(String, Zeroizing<Vec<u8>>)>;

/// Opens the backup at `input` (passphrase from the prompt or stdin) and decodes its key files,
/// refusing a file that is no key file.
fn open_backup_files(input: &Path, from_stdin: bool) -> anyhow::Result<(Payload, KeyFiles)> {
    let sealed =
        std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
    let pass = passphrase(from_stdin, false)?;
    let json = keys::backup::open_backup(&pass, &sealed)
        .map_err(|e| anyhow::anyhow!("{}: {}", input.display(), plain(e)))?;
    let payload: Payload = serde_json::from_slice(&json).map_err(|_| {
        anyhow::anyhow!(
            "{}: the backup opens but holds no key material this version reads",
            input.display()
        )
    })?;
    let mut files = Vec::new();
    for (name, b64) in &payload.files {
        if !KEY_FILES.contains(&name.as_str()) {
            bail!(
                "{}: names a file {name:?} that is no key file; nothing restored",
                input.display()
            );
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| {
                anyhow::anyhow!(
                    "{}: {name} is not base64; nothing restored",
                    input.display()
                )
            })?;
        files.push((name.clone(), Zeroizing::new(bytes)));
    }
    Ok((payload, files))
}

/// The files of the data dir that exist with other bytes than the backup's.
fn differing_files(data_dir: &Path, files: &KeyFiles) -> anyhow::Result<Vec<PathBuf>> {
    let mut differ = Vec::new();
    for (name, bytes) in files {
        let path = data_dir.join(name);
        match std::fs::read(&path) {
            Ok(cur) if cur.as_slice() != bytes.as_slice() => differ.push(path),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => bail!("cannot read {}: {e}", path.display()),
        }
    }
    Ok(differ)
}

/// Writes the backup's files into the data dir (mode 0600), moving the differing ones aside as
/// `<name>.replaced-<ms>`; returns the restored names and those already identical.
fn write_files(
    data_dir: &Path,
    files: &KeyFiles,
    differ: &[PathBuf],
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let now = gateway::index::now_ms();
    let (mut restored, mut unchanged) = (Vec::new(), Vec::new());
    for (name, bytes) in files {
        let path = data_dir.join(name);
        if differ.contains(&path) {
            let kept = data_dir.join(format!("{name}.replaced-{now}"));
            std::fs::rename(&path, &kept)
                .with_context(|| format!("cannot move {} aside", path.display()))?;
            println!("kept the replaced {} as {}", path.display(), kept.display());
        } else if path.exists() {
            unchanged.push(name.clone());
            continue;
        }
        write_private(&path, bytes)?;
        restored.push(name.clone());
    }
    Ok((restored, unchanged))
}
