//! What the `usher ctl` tests look at in a finished command: its output,
//! success or a clean failure (exit 1), and one row of a table.

use std::process::Output;

/// (stdout, stderr) as text.
pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

/// Asserts the command succeeded; returns its stdout.
pub fn ok(o: Output) -> String {
    let (out, err) = text(&o);
    assert!(o.status.success(), "usher ctl failed: {err}\n{out}");
    out
}

/// Asserts the command failed with exit status 1; returns its stderr.
pub fn fails(o: Output) -> String {
    let (out, err) = text(&o);
    assert!(!o.status.success(), "usher ctl should fail: {out}");
    assert_eq!(o.status.code(), Some(1), "{err}");
    err
}

/// The cells of the table row that starts with `name` (cells are two or
/// more spaces apart).
pub fn table_row<'a>(table: &'a str, name: &str) -> Vec<&'a str> {
    table
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no row {name}: {table}"))
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}
