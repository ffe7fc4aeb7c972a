//! Where a job's input files come from: paths relative to the import directory, refused when
//! they would leave it. Every job type that reads a file resolves it here, so that another
//! source (an upload id) can stand in for a path in one place.

use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use crate::jobs::JobError;
use crate::uploads::Uploads;

/// A job's input file as its parameters name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input {
    /// A path relative to the import directory.
    Path(PathBuf),
    /// An upload's id.
    Upload(String),
}

impl Input {
    /// The input named by parameter `path_name` (a path) or `upload_name` (an upload id):
    /// exactly one of them.
    pub(crate) fn from_params(
        params: &Value,
        path_name: &str,
        upload_name: &str,
    ) -> Result<Input, JobError> {
        let text = |name: &str| match params.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(invalid(format!("{name} must be a string"))),
        };
        match (text(path_name)?, text(upload_name)?) {
            (Some(path), None) => Ok(Input::Path(ImportDir::check(path)?)),
            (None, Some(id)) => Ok(Input::Upload(id.to_owned())),
            (Some(_), Some(_)) => Err(invalid(format!(
                "give {path_name} or {upload_name}, not both"
            ))),
            (None, None) => Err(invalid(format!(
                "{path_name} (or {upload_name}) is required"
            ))),
        }
    }

    /// How people know it, in messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Input::Path(path) => path.display().to_string(),
            Input::Upload(id) => format!("upload {id}"),
        }
    }
}

fn invalid(message: impl Into<String>) -> JobError {
    JobError::permanent("invalid_parameter", message)
}

/// Where inputs are found: the import directory, and the uploads when the server takes them.
#[derive(Debug, Clone)]
pub(crate) struct ImportDir {
    root: PathBuf,
    uploads: Option<Uploads>,
}

impl ImportDir {
    /// Files are read from `root`.
    pub(crate) fn new(root: impl Into<PathBuf>) -> ImportDir {
        ImportDir {
            root: root.into(),
            uploads: None,
        }
    }

    /// Upload ids are looked up in `dir` too.
    pub(crate) fn with_uploads(mut self, dir: impl Into<PathBuf>) -> ImportDir {
        self.uploads = Some(Uploads::new(dir, u64::MAX));
        self
    }

    /// The file `input` names, for a job of `owner`: an upload must be theirs.
    pub(crate) fn open(&self, input: &Input, owner: &str) -> Result<PathBuf, JobError> {
        match input {
            Input::Path(path) => self.resolve(path),
            Input::Upload(id) => {
                let uploads = self.uploads.as_ref().ok_or_else(|| {
                    invalid("this server takes no uploads: name a file of the import directory")
                })?;
                let info = uploads
                    .get(id, owner, false)
                    .map_err(|e| JobError::permanent("file_not_found", e.to_string()))?;
                Ok(uploads.path(&info))
            }
        }
    }

    /// Checks a parameter's path at submission: relative, without `..`, not empty.
    pub(crate) fn check(path: &str) -> Result<PathBuf, JobError> {
        let candidate = Path::new(path);
        let escapes = candidate.is_absolute()
            || candidate
                .components()
                .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
        if path.is_empty() || escapes {
            return Err(JobError::permanent(
                "invalid_parameter",
                format!("{path:?} must be a path relative to the import directory, without '..'"),
            ));
        }
        Ok(candidate.to_owned())
    }

    /// The file `relative` names, once it exists and (links followed) stays inside the
    /// import directory.
    pub(crate) fn resolve(&self, relative: &Path) -> Result<PathBuf, JobError> {
        let path = self.root.join(relative);
        let resolved = path.canonicalize().map_err(|e| {
            JobError::permanent("file_not_found", format!("{}: {e}", relative.display()))
        })?;
        let root = self.root.canonicalize().map_err(|e| {
            JobError::permanent(
                "file_not_found",
                format!("import directory {}: {e}", self.root.display()),
            )
        })?;
        if !resolved.starts_with(&root) {
            return Err(JobError::permanent(
                "invalid_parameter",
                format!("{} is outside the import directory", relative.display()),
            ));
        }
        Ok(resolved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_leave_the_directory_are_refused() {
        assert!(ImportDir::check("a/b.csv").is_ok());
        for bad in ["", "/etc/passwd", "../x", "a/../../x"] {
            assert!(ImportDir::check(bad).is_err(), "{bad}");
        }
    }
}
