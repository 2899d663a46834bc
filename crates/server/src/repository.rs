//! The model repository on disk: which models exist, their versions, files and settings.
//!
//! A repository is a directory of model directories:
//! ```text
//! repo/
//!   iris/model.onnx                  unversioned: served as version "1"
//!   iris/model-settings.json         optional settings
//!   churn/1/model.json               versioned: numeric subdirectories
//!   churn/2/model.json
//! ```
//! A single model directory (`oxserve serve ./iris`) or a single model file
//! (`oxserve serve ./model.onnx`) also works: it is a repository of one model.
//! The runtime is chosen by the model file: `*.onnx` → ONNX Runtime, `*.json`/`*.ubj` →
//! XGBoost, `*.txt` → LightGBM.
//!
//! A request cannot make the server read outside what the operator put in the repository:
//! a name given to [`Repository::locate`] is only ever compared with the names found, never
//! joined into a path (one with a path separator, `.` or `..` is refused outright), and the
//! one path a model's settings name, the explainer background file, must lie inside the
//! model directory (relative, no `..`). Symlinks are the operator's and are followed: a
//! model directory or file may link to one kept elsewhere (`oxserve up` serves `file://`
//! models and builds each replica's repository that way).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::settings::{ModelSettings, SETTINGS_FILE};

/// The file formats oxserve can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFormat {
    Onnx,
    Xgboost,
    Lightgbm,
}

impl ModelFormat {
    /// The format of a model file, judged by its extension.
    pub fn of_file(path: &Path) -> Option<ModelFormat> {
        let name = path.file_name()?.to_str()?;
        if name == SETTINGS_FILE {
            return None;
        }
        match path.extension()?.to_str()? {
            "onnx" => Some(ModelFormat::Onnx),
            "json" | "ubj" => Some(ModelFormat::Xgboost),
            "txt" => Some(ModelFormat::Lightgbm),
            _ => None,
        }
    }

    /// Runtime name used as the platform in metadata and configuration.
    pub fn platform(self) -> &'static str {
        match self {
            ModelFormat::Onnx => "onnxruntime_onnx",
            ModelFormat::Xgboost => "xgboost",
            ModelFormat::Lightgbm => "lightgbm",
        }
    }
}

/// One version of a model found on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionFile {
    pub version: String,
    pub file: PathBuf,
    pub format: ModelFormat,
}

/// A model found on disk: its served name, versions and settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelLocation {
    pub name: String,
    pub dir: PathBuf,
    /// Versions to serve, ascending by number; the last is the default.
    pub versions: Vec<VersionFile>,
    pub settings: ModelSettings,
}

#[derive(Debug, Clone)]
enum Root {
    /// A directory of model directories.
    Directory(PathBuf),
    /// A directory that is itself one model.
    ModelDir(PathBuf),
    /// A single model file.
    File(PathBuf),
}

/// Where models are discovered.
#[derive(Debug, Clone)]
pub struct Repository {
    root: Root,
}

impl Repository {
    /// Opens `path` as a repository, a single model directory or a single model file.
    pub fn open(path: &Path) -> Result<Repository> {
        let meta = std::fs::metadata(path)
            .map_err(|e| Error::invalid(format!("model repository {}: {e}", path.display())))?;
        let root = if meta.is_file() {
            if ModelFormat::of_file(path).is_none() {
                return Err(Error::invalid(format!(
                    "{}: not a model file (expected .onnx, .json, .ubj or .txt)",
                    path.display()
                )));
            }
            Root::File(path.to_owned())
        } else if is_model_dir(path) {
            Root::ModelDir(path.to_owned())
        } else {
            Root::Directory(path.to_owned())
        };
        Ok(Repository { root })
    }

    /// The path the repository was opened from.
    pub fn path(&self) -> &Path {
        match &self.root {
            Root::Directory(p) | Root::ModelDir(p) | Root::File(p) => p,
        }
    }

    /// Every model in the repository, sorted by name. Directories that hold no model are
    /// skipped; a model whose settings are broken, or that resolves outside the
    /// repository, is reported as an error entry.
    pub fn scan(&self) -> Vec<Result<ModelLocation>> {
        self.entries()
            .into_iter()
            .map(|e| match e {
                Entry::Found(r) => r,
                Entry::Escapes { name, message } => Err(Error::load(name, message)),
            })
            .collect()
    }

    fn entries(&self) -> Vec<Entry> {
        match &self.root {
            Root::File(file) => vec![Entry::Found(single_file(file))],
            Root::ModelDir(dir) => vec![contained_model(dir, &dir_name(dir))],
            Root::Directory(root) => {
                let mut dirs: Vec<PathBuf> = match std::fs::read_dir(root) {
                    Ok(entries) => entries
                        .filter_map(|e| e.ok())
                        .map(|e| e.path())
                        .filter(|p| p.is_dir() && !dir_name(p).starts_with('.'))
                        .collect(),
                    Err(e) => {
                        return vec![Entry::Found(Err(Error::load(
                            root.display().to_string(),
                            format!("reading repository: {e}"),
                        )))];
                    }
                };
                dirs.sort();
                let mut found: Vec<Entry> = dirs
                    .iter()
                    .filter(|d| is_model_dir(d) || has_version_dirs(d))
                    .map(|d| contained_model(d, &dir_name(d)))
                    .collect();
                found.sort_by(|a, b| match (a, b) {
                    (Entry::Found(Ok(a)), Entry::Found(Ok(b))) => a.name.cmp(&b.name),
                    _ => std::cmp::Ordering::Equal,
                });
                found
            }
        }
    }

    /// The model served as `name`. A name that could only be a path (`../x`, `a/b`, `.`)
    /// and a model whose settings name a file outside its directory are invalid requests
    /// (400); a name the repository does not hold is not found (404).
    pub fn locate(&self, name: &str) -> Result<ModelLocation> {
        check_name(name)?;
        for entry in self.entries() {
            match entry {
                Entry::Found(Ok(loc)) if loc.name == name => return Ok(loc),
                Entry::Found(Err(Error::Load { model, message })) if model == name => {
                    return Err(Error::Load { model, message });
                }
                Entry::Escapes { name: n, message } if n == name => {
                    return Err(Error::invalid(format!("model \"{name}\": {message}")));
                }
                _ => {}
            }
        }
        Err(Error::not_found(format!("model \"{name}\" is not in the repository")))
    }
}

/// One model of a scan: located (or failed to), or refused for naming a path outside it.
// A scan's entries live only until it returns; boxing the location would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Entry {
    Found(Result<ModelLocation>),
    Escapes { name: String, message: String },
}

/// A model name as a request gives it: never a path.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        return Err(Error::invalid(format!(
            "model name \"{}\": a model name cannot be empty, \".\", \"..\" or hold '/', '\\' or NUL",
            name.escape_debug()
        )));
    }
    Ok(())
}

/// Locates the model in `dir`, refusing a settings file that names a path outside it.
fn contained_model(dir: &Path, name: &str) -> Entry {
    let location = match locate_dir(dir, name) {
        Ok(l) => l,
        Err(e) => return Entry::Found(Err(e)),
    };
    let background = location
        .settings
        .explainer
        .as_ref()
        .and_then(|e| e.background.as_ref())
        .map(|b| b.file.as_path());
    if let Some(file) = background {
        // `load_dir` joined it to `dir`: an absolute path replaced `dir`, `..` climbs out.
        let inside = file.strip_prefix(dir).is_ok_and(|rel| {
            rel.components().all(|c| matches!(c, std::path::Component::Normal(_)))
        });
        if !inside {
            return Entry::Escapes {
                name: location.name,
                message: format!(
                    "{SETTINGS_FILE}: explainer.background.file {} is outside the model directory {}",
                    file.display(),
                    dir.display()
                ),
            };
        }
    }
    Entry::Found(Ok(location))
}

fn dir_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into())
}

fn model_file_in(dir: &Path) -> Option<(PathBuf, ModelFormat)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file() && ModelFormat::of_file(p).is_some())
        .collect();
    files.sort();
    // Prefer the conventional `model.*` names.
    let preferred = files.iter().position(|p| p.file_stem().is_some_and(|s| s == "model"));
    let file = match preferred {
        Some(i) => files.swap_remove(i),
        None => files.into_iter().next()?,
    };
    let format = ModelFormat::of_file(&file)?;
    Some((file, format))
}

fn is_model_dir(dir: &Path) -> bool {
    model_file_in(dir).is_some()
}

fn has_version_dirs(dir: &Path) -> bool {
    !version_dirs(dir).is_empty()
}

/// Numeric subdirectories holding a model file, ascending.
fn version_dirs(dir: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .filter_map(|p| Some((dir_name(&p).parse::<u64>().ok()?, p)))
        .filter(|(_, p)| is_model_dir(p))
        .collect();
    v.sort();
    v
}

fn locate_dir(dir: &Path, dir_name: &str) -> Result<ModelLocation> {
    let settings = ModelSettings::load_dir(dir, dir_name)?;
    let name = settings.name.clone().unwrap_or_else(|| dir_name.to_owned());
    let mut versions: Vec<VersionFile> = version_dirs(dir)
        .into_iter()
        .filter_map(|(n, p)| {
            let (file, format) = model_file_in(&p)?;
            Some(VersionFile { version: n.to_string(), file, format })
        })
        .collect();
    if versions.is_empty() {
        let (file, format) = model_file_in(dir)
            .ok_or_else(|| Error::load(&name, format!("{}: no model file found", dir.display())))?;
        let version = settings.version.clone().unwrap_or_else(|| "1".to_owned());
        versions.push(VersionFile { version, file, format });
    } else if settings.versions.is_empty() {
        // Like Triton's default version policy: the latest version only.
        versions.drain(..versions.len() - 1);
    } else {
        if let Some(missing) =
            settings.versions.iter().find(|want| !versions.iter().any(|v| &&v.version == want))
        {
            return Err(Error::load(
                &name,
                format!("{SETTINGS_FILE}: version \"{missing}\" has no directory"),
            ));
        }
        versions.retain(|v| settings.versions.contains(&v.version));
    }
    Ok(ModelLocation { name, dir: dir.to_owned(), versions, settings })
}

fn single_file(file: &Path) -> Result<ModelLocation> {
    let format = ModelFormat::of_file(file)
        .ok_or_else(|| Error::invalid(format!("{}: not a model file", file.display())))?;
    let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let dir = file.parent().unwrap_or(Path::new(".")).to_owned();
    // `path/iris/model.onnx` is called "iris"; `path/iris.onnx` is called "iris".
    let name = if stem == "model" { dir_name(&dir) } else { stem };
    Ok(ModelLocation {
        name,
        dir,
        versions: vec![VersionFile { version: "1".into(), file: file.to_owned(), format }],
        settings: ModelSettings::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }

    #[test]
    fn names_that_are_paths_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        touch(&tmp.path().join("iris/model.onnx"));
        let repo = Repository::open(tmp.path()).unwrap();
        for name in ["", ".", "..", "../iris", "iris/..", "/etc", "a\\b", "a\0b"] {
            let err = repo.locate(name).unwrap_err();
            assert_eq!(err.code(), oxserve_protocol::ErrorCode::InvalidArgument, "{name:?}");
            assert!(err.to_string().contains("a model name cannot be"), "{err}");
        }
        assert!(repo.locate("iris").is_ok());
        assert!(
            repo.locate("a..b").is_err_and(|e| e.to_string().contains("not in the repository"))
        );
    }

    #[test]
    fn a_background_file_outside_the_model_is_refused_and_symlinks_are_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, out) = (tmp.path().join("repo"), tmp.path().join("out"));
        touch(&out.join("m/model.onnx"));
        touch(&root.join("inside/model.onnx"));
        std::os::unix::fs::symlink(out.join("m"), root.join("dirlink")).unwrap();
        std::os::unix::fs::symlink(root.join("inside"), root.join("alias")).unwrap();
        for (dir, file) in [("climbs", "../../out/rows.csv"), ("absolute", "/etc/passwd")] {
            touch(&root.join(dir).join("model.onnx"));
            let settings = format!(
                r#"{{"explainer":{{"type":"kernelshap","background":{{"file":"{file}"}}}}}}"#
            );
            std::fs::write(root.join(dir).join(SETTINGS_FILE), settings).unwrap();
        }
        let repo = Repository::open(&root).unwrap();
        for name in ["climbs", "absolute"] {
            let err = repo.locate(name).unwrap_err();
            assert_eq!(err.code(), oxserve_protocol::ErrorCode::InvalidArgument, "{name}: {err}");
            assert!(err.to_string().contains("outside the model directory"), "{err}");
        }
        assert!(repo.locate("alias").is_ok());
        let linked = repo.locate("dirlink").unwrap();
        assert_eq!(linked.versions[0].file, root.join("dirlink/model.onnx"));
        let refused = repo
            .scan()
            .iter()
            .filter(|r| r.as_ref().is_err_and(|e| e.to_string().contains("outside the model")))
            .count();
        assert_eq!(refused, 2);
    }

    #[test]
    fn scans_unversioned_versioned_and_settings() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        touch(&root.join("iris/model.onnx"));
        touch(&root.join("churn/1/model.json"));
        touch(&root.join("churn/3/model.json"));
        touch(&root.join("churn/2/model.json"));
        touch(&root.join("renamed/model.txt"));
        std::fs::write(root.join("renamed/model-settings.json"), br#"{"name":"lgbm"}"#).unwrap();
        std::fs::create_dir_all(root.join("empty")).unwrap();
        let repo = Repository::open(root).unwrap();
        let found: Vec<ModelLocation> = repo.scan().into_iter().map(|r| r.unwrap()).collect();
        let names: Vec<&str> = found.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["churn", "iris", "lgbm"]);
        assert_eq!(found[0].versions.len(), 1, "latest version only by default");
        assert_eq!(found[0].versions[0].version, "3");
        assert_eq!(found[1].versions[0].format, ModelFormat::Onnx);
        assert_eq!(found[2].versions[0].format, ModelFormat::Lightgbm);
        assert!(matches!(repo.locate("nope"), Err(Error::Protocol(_))));
    }

    #[test]
    fn explicit_versions_and_missing_ones() {
        let tmp = tempfile::tempdir().unwrap();
        touch(&tmp.path().join("m/1/model.onnx"));
        touch(&tmp.path().join("m/2/model.onnx"));
        std::fs::write(tmp.path().join("m/model-settings.json"), br#"{"versions":["1","2"]}"#)
            .unwrap();
        let loc = Repository::open(tmp.path()).unwrap().locate("m").unwrap();
        assert_eq!(loc.versions.iter().map(|v| v.version.as_str()).collect::<Vec<_>>(), ["1", "2"]);
        std::fs::write(tmp.path().join("m/model-settings.json"), br#"{"versions":["7"]}"#).unwrap();
        let err = Repository::open(tmp.path()).unwrap().locate("m").unwrap_err().to_string();
        assert!(err.contains("version \"7\" has no directory"), "{err}");
    }

    #[test]
    fn single_model_dir_and_file() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("iris/model.onnx");
        touch(&file);
        let by_dir = Repository::open(&tmp.path().join("iris")).unwrap().scan();
        assert_eq!(by_dir[0].as_ref().unwrap().name, "iris");
        let by_file = Repository::open(&file).unwrap().scan();
        assert_eq!(by_file[0].as_ref().unwrap().name, "iris");
        let bad = tmp.path().join("notes.md");
        touch(&bad);
        assert!(Repository::open(&bad).unwrap_err().to_string().contains("not a model file"));
    }
}
