//! The admin token: generated on first start into `<data_dir>/admin.token`
//! (mode 0600), checked on every admin request.

use std::path::Path;

/// The check is the agent channel's: one constant-time comparison for both.
pub use usher_manager::token::bearer_matches;

/// File name of the admin token inside the data folder.
pub const TOKEN_FILE: &str = "admin.token";

/// Reads the token, creating a random one (32 bytes, hex, mode 0600) if there
/// is none; the same generator as the manager's agent token.
pub fn load_or_create(data_dir: &Path) -> std::io::Result<String> {
    usher_manager::token::load_or_create(&data_dir.join(TOKEN_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_once_with_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = load_or_create(dir.path()).expect("create");
        assert_eq!(t.len(), 64);
        let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create(dir.path()).expect("read"), t);
        assert!(bearer_matches(Some(&format!("Bearer {t}")), &t));
        assert!(!bearer_matches(Some("Bearer x"), &t));
        assert!(!bearer_matches(None, &t));
        assert!(!bearer_matches(Some(&t), &t));
    }
}
