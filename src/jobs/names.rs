//! Owners and job types, each held once: there are few of them and many jobs, so the
//! in-memory indexes (`table.rs`, `finished.rs`, `tombstones.rs`) keep a 4-byte number for
//! each instead of a string per job.

use std::collections::HashMap;
use std::sync::Arc;

/// An interned owner or job type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Name(u32);

/// The names interned so far. Never shrinks: the owners and types a server sees are few.
#[derive(Debug, Default)]
pub(super) struct Names {
    names: Vec<Arc<str>>,
    index: HashMap<Arc<str>, u32>,
}

impl Names {
    /// The number of `name`, interned if new.
    pub fn intern(&mut self, name: &str) -> Name {
        if let Some(&n) = self.index.get(name) {
            return Name(n);
        }
        let n = self.names.len() as u32;
        let name: Arc<str> = name.into();
        self.names.push(name.clone());
        self.index.insert(name, n);
        Name(n)
    }

    /// The name numbered `name` ("" for a number this table never gave).
    pub fn get(&self, name: Name) -> &str {
        self.names.get(name.0 as usize).map_or("", |n| n)
    }

    /// The number of `name`, when interned.
    pub fn find(&self, name: &str) -> Option<Name> {
        self.index.get(name).map(|&n| Name(n))
    }
}
