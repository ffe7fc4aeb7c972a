//! Where a job's input files come from: paths relative to the import directory, refused when
//! they would leave it. Every job type that reads a file resolves it here, so that another
//! source (an upload id) can stand in for a path in one place.

use std::path::{Component, Path, PathBuf};

use crate::jobs::JobError;

/// The import directory.
#[derive(Debug, Clone)]
pub(crate) struct ImportDir {
    root: PathBuf,
}

impl ImportDir {
    /// Files are read from `root`.
    pub(crate) fn new(root: impl Into<PathBuf>) -> ImportDir {
        ImportDir { root: root.into() }
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
