//! Helpers shared by the DSL test files.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

use streams_core::Topology;

/// Compares `describe()` with `tests/golden/<name>.txt`; `UPDATE_GOLDEN=1` rewrites the file.
pub fn assert_golden(name: &str, topology: &Topology) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.txt"));
    let actual = topology.describe().to_string();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    assert_eq!(
        actual, expected,
        "describe() of `{name}` changed; review and rerun with UPDATE_GOLDEN=1 if intended"
    );
}
