//! model_dir on disk: checkpoint files and the manifest that names them (the counterpart of
//! TensorFlow's `checkpoint` state file). Every write is atomic and the manifest is written last,
//! so a crash at any instant leaves the previous latest checkpoint loadable. No libtorch here:
//! tensors arrive as host bytes.

pub mod atomic;
pub mod format;
pub mod policy;
pub mod time;

use std::collections::BTreeMap;
use std::io::Write;

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use format::{HostTensor, Meta};
pub use policy::Retention;

use crate::pipeline::Objective;
use crate::plan::Fingerprints;

/// The manifest's file name in model_dir.
pub const MANIFEST: &str = "manifest.yaml";
const LOCK: &str = ".lock";
/// Evaluation output, as tf.estimator's `eval/` folder.
pub const EVAL_DIR: &str = "eval";
/// `est export`'s folders, one per exported step.
pub const EXPORT_DIR: &str = "export";
const EVAL_RECORD: &str = "metrics.yaml";

/// Held while a run writes to a model_dir.
pub struct Lock {
    _file: std::fs::File,
}

/// An evaluation of one checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The checkpoint's step.
    pub global_step: u64,
    /// UTC, RFC 3339.
    pub time: String,
    /// The data file it was evaluated on.
    pub data: Utf8PathBuf,
    /// tf.estimator's metric keys and their values.
    pub metrics: BTreeMap<String, f64>,
    /// The checkpoint evaluated, for evaluations during training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
}

/// The manifest: every retained checkpoint, oldest first, and which one is the latest.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The manifest's own format, 1.
    pub format: u32,
    /// The file of the latest checkpoint.
    pub latest: Option<String>,
    /// When the first checkpoint here was written: `keep_every` counts from it.
    #[serde(default)]
    pub started: f64,
    /// Oldest first.
    pub checkpoints: Vec<Entry>,
    /// Every evaluation during training, oldest first, including those of checkpoints since
    /// removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evaluations: Vec<Evaluation>,
}

impl Manifest {
    /// The last evaluation during training of checkpoint `file`.
    pub fn evaluation_of(&self, file: &str) -> Option<&Evaluation> {
        self.evaluations.iter().rev().find(|e| e.checkpoint.as_deref() == Some(file))
    }

    /// The retained checkpoints evaluated during training, best first by `objective` (ties to
    /// the earlier), with their value.
    pub fn best(&self, objective: &Objective) -> Vec<(&Entry, f64)> {
        let mut out: Vec<(&Entry, f64)> = self
            .checkpoints
            .iter()
            .filter_map(|c| {
                let value = *self.evaluation_of(&c.file)?.metrics.get(&objective.metric)?;
                value.is_finite().then_some((c, value))
            })
            .collect();
        out.sort_by(|a, b| objective.cost(a.1).total_cmp(&objective.cost(b.1)).then(a.0.step.cmp(&b.0.step)));
        out
    }
}

/// Which checkpoint a command reads: `latest`, `best` or a global step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Choice {
    /// The newest loadable one, as tf.estimator's `checkpoint_path=None`.
    #[default]
    Latest,
    /// The best by the plan's `best_by` among those evaluated during training.
    Best,
    /// The one of this global step.
    Step(u64),
}

impl std::str::FromStr for Choice {
    type Err = String;
    fn from_str(s: &str) -> Result<Choice, String> {
        match s {
            "latest" => Ok(Choice::Latest),
            "best" => Ok(Choice::Best),
            n => n
                .parse()
                .map(Choice::Step)
                .map_err(|_| format!("`{n}` is not a checkpoint: expected `latest`, `best` or a global step")),
        }
    }
}

/// One retained checkpoint, as the manifest records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Its file name in model_dir.
    pub file: String,
    /// Its global step.
    pub step: u64,
    /// UTC, RFC 3339.
    pub time: String,
    /// Seconds since the Unix epoch.
    pub created: f64,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// The fingerprints of the plan that wrote it.
    pub fingerprint: Fingerprints,
    /// Kept for good by `keep_every`.
    #[serde(default)]
    pub preserved: bool,
}

/// What can go wrong with a model_dir.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A file or folder could not be read or written.
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        /// What est was doing: "read", "write", "create", ...
        action: &'static str,
        /// The file or folder.
        path: Utf8PathBuf,
        /// The system's reason.
        source: std::io::Error,
    },
    /// A checkpoint that does not read as one.
    #[error("`{path}` is not a checkpoint est can read: {source}")]
    Unreadable {
        /// The checkpoint.
        path: Utf8PathBuf,
        /// Why.
        source: format::FormatError,
    },
    /// A checkpoint of another size than the manifest recorded: truncated, or another file.
    #[error("`{path}` is not a checkpoint est can read: {size} bytes where the manifest records {recorded}")]
    WrongSize {
        /// The checkpoint.
        path: Utf8PathBuf,
        /// Its size.
        size: u64,
        /// The manifest's.
        recorded: u64,
    },
    /// A checkpoint whose bytes changed since it was written.
    #[error("`{path}` is damaged: its SHA-256 is not the one the manifest recorded")]
    Checksum {
        /// The checkpoint.
        path: Utf8PathBuf,
    },
    /// A manifest or evaluation record that does not read, or a value that does not write.
    #[error("`{path}` is unreadable: {source}")]
    Yaml {
        /// The file.
        path: Utf8PathBuf,
        /// Why.
        source: serde_yaml::Error,
    },
    /// No checkpoint of the folder's can be loaded.
    #[error("no checkpoint in `{dir}` can be loaded: {}", joined(.errors))]
    NoneLoadable {
        /// The model_dir.
        dir: Utf8PathBuf,
        /// Why each could not, newest first.
        errors: Vec<CheckpointError>,
    },
    /// Another `est train` writes to the folder.
    #[error("`{dir}` is in use by another `est train` (pid {pid}); wait for it, or train elsewhere with --model-dir")]
    Locked {
        /// The model_dir.
        dir: Utf8PathBuf,
        /// The other process, as its lock file names it.
        pid: String,
    },
    /// `--checkpoint best` in a folder with no evaluation during training.
    #[error(
        "no checkpoint in `{dir}` has an evaluation of `{metric}` to choose the best by: evaluate during training with `eval {{ every = ... }}`, or pass --checkpoint latest"
    )]
    NoEvaluations {
        /// The model_dir.
        dir: Utf8PathBuf,
        /// `best_by`'s metric.
        metric: String,
    },
    /// `--checkpoint STEP` naming no checkpoint.
    #[error("`{dir}` has no checkpoint of step {step}; it has {}", steps_list(.steps))]
    NoSuchStep {
        /// The model_dir.
        dir: Utf8PathBuf,
        /// The step asked for.
        step: u64,
        /// The steps it has.
        steps: Vec<u64>,
    },
    /// The thread that writes checkpoints ended early.
    #[error("the checkpoint writer for `{dir}` stopped unexpectedly")]
    WriterStopped {
        /// The model_dir.
        dir: Utf8PathBuf,
    },
}

/// `steps 100, 200 and 300`, or `none`.
fn steps_list(steps: &[u64]) -> String {
    let shown: Vec<String> = steps.iter().map(u64::to_string).collect();
    match shown.len() {
        0 => "none".into(),
        1 => format!("step {}", shown[0]),
        _ => format!("steps {}", crate::diagnostic::list(&shown, "and")),
    }
}

/// Several errors in one line.
fn joined(errors: &[CheckpointError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// A loaded checkpoint, and warnings about newer ones that had to be passed over.
pub struct Loaded {
    /// The checkpoint loaded.
    pub entry: Entry,
    /// Its metadata.
    pub meta: Meta,
    /// Every tensor, by name.
    pub tensors: BTreeMap<String, HostTensor>,
    /// The newer checkpoints passed over, and why.
    pub warnings: Vec<String>,
}

/// One model_dir.
pub struct Store {
    /// The folder.
    pub dir: Utf8PathBuf,
}

fn io<'a>(action: &'static str, path: &'a Utf8Path) -> impl FnOnce(std::io::Error) -> CheckpointError + 'a {
    move |source| CheckpointError::Io { action, path: path.to_owned(), source }
}

/// Where a checkpoint's bytes go as they are written.
pub type Sink<'a> = dyn FnMut(&[u8]) -> std::io::Result<()> + 'a;

/// `bytes`' SHA-256 in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The file name of the checkpoint of `step`.
pub fn file_name(step: u64) -> String {
    format!("ckpt-{step}.safetensors")
}

impl Store {
    /// The store in `dir`, which need not exist yet.
    pub fn new(dir: &Utf8Path) -> Store {
        Store { dir: dir.to_owned() }
    }

    /// Creates the folder and its parents.
    pub fn create(&self) -> Result<(), CheckpointError> {
        std::fs::create_dir_all(&self.dir).map_err(io("create", &self.dir))
    }

    /// The manifest, rebuilt from the checkpoint files when it is missing or unreadable.
    /// `None` when the folder holds no checkpoint at all.
    pub fn manifest(&self) -> Result<Option<Manifest>, CheckpointError> {
        let path = self.dir.join(MANIFEST);
        match std::fs::read_to_string(&path) {
            Ok(text) => match serde_yaml::from_str::<Manifest>(&text) {
                Ok(m) => Ok(Some(m)),
                Err(_) => self.rebuild(),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.rebuild(),
            Err(e) => Err(io("read", &path)(e)),
        }
    }

    /// A manifest from the `ckpt-*.safetensors` files' own headers.
    fn rebuild(&self) -> Result<Option<Manifest>, CheckpointError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("list", &self.dir)(e)),
        };
        let mut checkpoints = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !(name.starts_with("ckpt-") && name.ends_with(".safetensors")) {
                continue;
            }
            let path = self.dir.join(&name);
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let Ok((meta, _)) = format::decode(&bytes) else {
                continue;
            };
            checkpoints.push(Entry {
                file: name,
                step: meta.global_step,
                time: time::rfc3339(meta.created),
                created: meta.created,
                size: bytes.len() as u64,
                sha256: sha256_hex(&bytes),
                fingerprint: meta.fingerprint,
                preserved: false,
            });
        }
        if checkpoints.is_empty() {
            return Ok(None);
        }
        checkpoints.sort_by_key(|e| e.step);
        let latest = checkpoints.last().map(|e| e.file.clone());
        let started = checkpoints.iter().map(|e| e.created).fold(f64::INFINITY, f64::min);
        Ok(Some(Manifest { format: 1, latest, started, checkpoints, evaluations: Vec::new() }))
    }

    /// The metadata of the checkpoint `load_latest` would start from, reading headers only: a
    /// checkpoint whose size differs from the manifest's or whose header is unreadable is passed
    /// over, as loading would. Errors only when none is readable.
    pub fn latest_meta(&self) -> Result<Option<(Entry, Meta)>, CheckpointError> {
        let Some(manifest) = self.manifest()? else {
            return Ok(None);
        };
        let mut errors = Vec::new();
        for entry in newest_first(&manifest) {
            match self.header(entry) {
                Ok(meta) => return Ok(Some((entry.clone(), meta))),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            return Ok(None);
        }
        Err(CheckpointError::NoneLoadable { dir: self.dir.clone(), errors })
    }

    /// The checkpoint `choice` names, with its metadata; `None` when the folder has none.
    /// `latest` passes over damaged ones as loading does; `best` and a step name one exactly.
    pub fn chosen_meta(&self, choice: Choice, objective: &Objective) -> Result<Option<(Entry, Meta)>, CheckpointError> {
        if choice == Choice::Latest {
            return self.latest_meta();
        }
        let Some(manifest) = self.manifest()? else { return Ok(None) };
        let entry = match choice {
            Choice::Best => manifest.best(objective).first().map(|(e, _)| (*e).clone()).ok_or_else(|| {
                CheckpointError::NoEvaluations { dir: self.dir.clone(), metric: objective.metric.clone() }
            })?,
            Choice::Step(step) => manifest.checkpoints.iter().find(|e| e.step == step).cloned().ok_or_else(|| {
                CheckpointError::NoSuchStep {
                    dir: self.dir.clone(),
                    step,
                    steps: manifest.checkpoints.iter().map(|e| e.step).collect(),
                }
            })?,
            Choice::Latest => return self.latest_meta(),
        };
        let meta = self.header(&entry)?;
        Ok(Some((entry, meta)))
    }

    /// The checkpoint `choice` names, loaded; `None` when the folder has none.
    pub fn load_chosen(&self, choice: Choice, objective: &Objective) -> Result<Option<Loaded>, CheckpointError> {
        if choice == Choice::Latest {
            return self.load_latest();
        }
        let Some((entry, _)) = self.chosen_meta(choice, objective)? else { return Ok(None) };
        let (meta, tensors) = self.load(&entry)?;
        Ok(Some(Loaded { entry, meta, tensors, warnings: Vec::new() }))
    }

    /// One checkpoint's metadata, if its size is the manifest's and its header reads.
    fn header(&self, entry: &Entry) -> Result<Meta, CheckpointError> {
        let path = self.dir.join(&entry.file);
        let size = std::fs::metadata(&path).map_err(io("read", &path))?.len();
        if size != entry.size {
            return Err(CheckpointError::WrongSize { path, size, recorded: entry.size });
        }
        format::read_meta(&path).map_err(|source| CheckpointError::Unreadable { path, source })
    }

    /// The newest checkpoint whose checksum holds, newest first; passed-over ones become warnings.
    pub fn load_latest(&self) -> Result<Option<Loaded>, CheckpointError> {
        let Some(manifest) = self.manifest()? else {
            return Ok(None);
        };
        let mut errors = Vec::new();
        for entry in newest_first(&manifest) {
            match self.load(entry) {
                Ok((meta, tensors)) => {
                    let warnings = errors.iter().map(|e| format!("{e}; falling back to an older checkpoint")).collect();
                    return Ok(Some(Loaded { entry: entry.clone(), meta, tensors, warnings }));
                }
                Err(e) => errors.push(e),
            }
        }
        Err(CheckpointError::NoneLoadable { dir: self.dir.clone(), errors })
    }

    /// One checkpoint, its checksum verified.
    pub fn load(&self, entry: &Entry) -> Result<(Meta, BTreeMap<String, HostTensor>), CheckpointError> {
        let path = self.dir.join(&entry.file);
        let bytes = std::fs::read(&path).map_err(io("read", &path))?;
        if sha256_hex(&bytes) != entry.sha256 {
            return Err(CheckpointError::Checksum { path });
        }
        format::decode(&bytes).map_err(|source| CheckpointError::Unreadable { path, source })
    }

    /// Writes a checkpoint, then the manifest naming it (with `evaluation`, its evaluation
    /// during training, in the same write), then removes what the retention policy no longer
    /// keeps (never `protect`, the checkpoint a run restored from). Returns the entry.
    pub fn save(
        &self,
        meta: &Meta,
        tensors: &BTreeMap<String, HostTensor>,
        retention: Retention,
        protect: Option<&str>,
        evaluation: Option<&Evaluation>,
    ) -> Result<Entry, CheckpointError> {
        let path = self.dir.join(file_name(meta.global_step));
        let layout = format::layout(meta, tensors.iter().map(|(k, v)| (k.as_str(), v.dtype, v.shape.as_slice())))
            .map_err(|source| CheckpointError::Unreadable { path, source })?;
        let mut body = |sink: &mut Sink| layout.order.iter().try_for_each(|(name, _)| sink(&tensors[name].bytes));
        self.save_with(meta, &layout, &mut body, retention, protect, evaluation)
    }

    /// As `save`, for a file laid out as `layout` whose bytes after the header `body` hands to
    /// its sink piece by piece, in layout order, while they are still being copied. A body that
    /// fails, or ends short, leaves model_dir as it was.
    pub fn save_with(
        &self,
        meta: &Meta,
        layout: &format::Layout,
        body: &mut dyn FnMut(&mut Sink) -> std::io::Result<()>,
        retention: Retention,
        protect: Option<&str>,
        evaluation: Option<&Evaluation>,
    ) -> Result<Entry, CheckpointError> {
        self.create()?;
        let name = file_name(meta.global_step);
        let path = self.dir.join(&name);
        // Read (or rebuilt from the older files) before this one is there: a rebuild would read
        // it back whole, only to learn what the entry already says.
        let mut manifest = self.manifest()?.unwrap_or_default();
        let mut hash = Sha256::new();
        let mut size = 0u64;
        atomic::write_with(&path, |file| {
            let mut sink = |bytes: &[u8]| {
                hash.update(bytes);
                size += bytes.len() as u64;
                file.write_all(bytes)
            };
            sink(&layout.header)?;
            body(&mut sink)?;
            if size != layout.file_len() {
                return Err(std::io::Error::other(format!("{size} of its {} bytes arrived", layout.file_len())));
            }
            Ok(())
        })
        .map_err(io("write", &path))?;
        let entry = Entry {
            file: name.clone(),
            step: meta.global_step,
            time: time::rfc3339(meta.created),
            created: meta.created,
            size,
            sha256: hash.finalize().iter().map(|b| format!("{b:02x}")).collect(),
            fingerprint: meta.fingerprint.clone(),
            preserved: false,
        };

        if manifest.checkpoints.is_empty() {
            manifest.started = meta.created;
        }
        manifest.format = 1;
        manifest.checkpoints.retain(|e| e.file != name);
        manifest.checkpoints.push(entry.clone());
        manifest.checkpoints.sort_by_key(|e| e.step);
        if let Some(evaluation) = evaluation {
            manifest.evaluations.push(Evaluation { checkpoint: Some(name.clone()), ..evaluation.clone() });
        }
        let objective = &meta.plan.checkpoint.best_by;
        let records: Vec<policy::Record> = manifest
            .checkpoints
            .iter()
            .map(|e| policy::Record {
                file: &e.file,
                step: e.step,
                created: e.created,
                preserved: e.preserved,
                cost: manifest
                    .evaluation_of(&e.file)
                    .and_then(|v| v.metrics.get(&objective.metric))
                    .map(|v| objective.cost(*v)),
            })
            .collect();
        let actions = policy::plan(&records, retention, manifest.started, protect);
        let mut removed = Vec::new();
        let mut retained = Vec::new();
        for (mut e, action) in manifest.checkpoints.drain(..).zip(actions) {
            match action {
                policy::Action::Keep => retained.push(e),
                policy::Action::Preserve => {
                    e.preserved = true;
                    retained.push(e);
                }
                // The checkpoint just written is the latest and always stays.
                policy::Action::Delete if e.file == name => retained.push(e),
                policy::Action::Delete => removed.push(e),
            }
        }
        manifest.checkpoints = retained;
        manifest.latest = Some(name);
        self.write_manifest(&manifest)?;
        for e in removed {
            let old = self.dir.join(&e.file);
            if let Err(err) = std::fs::remove_file(&old) {
                if err.kind() != std::io::ErrorKind::NotFound {
                    return Err(io("remove", &old)(err));
                }
            }
        }
        Ok(entry)
    }

    /// Moves every checkpoint, the manifest, the event files, the evaluation folder and the
    /// exports into `archive/<time>/`, deleting nothing. Returns that folder.
    pub fn archive(&self, now: f64) -> Result<Utf8PathBuf, CheckpointError> {
        let stamp = time::rfc3339(now).replace(':', "-");
        let mut target = self.dir.join("archive").join(&stamp);
        let mut n = 1;
        while target.exists() {
            n += 1;
            target = self.dir.join("archive").join(format!("{stamp}-{n}"));
        }
        std::fs::create_dir_all(&target).map_err(io("create", &target))?;
        let entries = std::fs::read_dir(&self.dir).map_err(io("list", &self.dir))?;
        let mut moved = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_checkpoint = name.starts_with("ckpt-") && name.ends_with(".safetensors");
            let is_events = name.starts_with("events.out.tfevents.");
            if is_checkpoint || is_events || name == MANIFEST || name == EVAL_DIR || name == EXPORT_DIR {
                moved.push(name);
            }
        }
        // The manifest goes first, so an interrupted archive never leaves one naming moved files.
        moved.sort_by_key(|n| n != MANIFEST);
        for name in moved {
            let from = self.dir.join(&name);
            std::fs::rename(&from, target.join(&name)).map_err(io("move", &from))?;
        }
        atomic::sync_dir(&self.dir).map_err(io("sync", &self.dir))?;
        Ok(target)
    }

    /// The single-writer lock, held until dropped. A lock left by a killed process is free again:
    /// the operating system releases it with the process.
    pub fn lock(&self) -> Result<Lock, CheckpointError> {
        self.create()?;
        let path = self.dir.join(LOCK);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io("open", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let pid = std::fs::read_to_string(&path).unwrap_or_default().trim().to_string();
                let pid = if pid.is_empty() { "unknown".to_string() } else { pid };
                return Err(CheckpointError::Locked { dir: self.dir.clone(), pid });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("lock", &path)(e)),
        }
        // Temporary files of a writer that was killed mid-save; the lock says none is running.
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') && name.contains(".tmp-") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        use std::io::{Seek, Write};
        file.set_len(0).map_err(io("write", &path))?;
        file.seek(std::io::SeekFrom::Start(0)).map_err(io("write", &path))?;
        writeln!(file, "{}", std::process::id()).map_err(io("write", &path))?;
        Ok(Lock { _file: file })
    }

    /// The last evaluation recorded in this model_dir; `None` when there is none.
    pub fn last_evaluation(&self) -> Result<Option<Evaluation>, CheckpointError> {
        let path = self.dir.join(EVAL_DIR).join(EVAL_RECORD);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("read", &path)(e)),
        };
        serde_yaml::from_str(&text).map(Some).map_err(|source| CheckpointError::Yaml { path, source })
    }

    /// Writes `evaluation` as the folder's last, atomically.
    pub fn record_evaluation(&self, evaluation: &Evaluation) -> Result<(), CheckpointError> {
        let dir = self.dir.join(EVAL_DIR);
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let path = dir.join(EVAL_RECORD);
        let text =
            serde_yaml::to_string(evaluation).map_err(|source| CheckpointError::Yaml { path: path.clone(), source })?;
        atomic::write(&path, text.as_bytes()).map_err(io("write", &path))
    }

    /// Writes the manifest, atomically.
    pub fn write_manifest(&self, manifest: &Manifest) -> Result<(), CheckpointError> {
        let path = self.dir.join(MANIFEST);
        let text =
            serde_yaml::to_string(manifest).map_err(|source| CheckpointError::Yaml { path: path.clone(), source })?;
        atomic::write(&path, text.as_bytes()).map_err(io("write", &path))
    }
}

/// The manifest's checkpoints from its latest back, newest first.
fn newest_first(manifest: &Manifest) -> Vec<&Entry> {
    let latest = match &manifest.latest {
        Some(name) => manifest.checkpoints.iter().find(|e| &e.file == name),
        None => manifest.checkpoints.iter().max_by_key(|e| e.step),
    };
    let mut order: Vec<&Entry> =
        manifest.checkpoints.iter().filter(|e| latest.is_none_or(|l| e.step <= l.step)).collect();
    order.sort_by_key(|e| std::cmp::Reverse(e.step));
    order
}
