//! Tokens and the files that hold secrets: the admin token
//! (`<data_dir>/admin.token`) and the agent token (`<data_dir>/agent.token`),
//! both mode 0600 and made on first start; the one
//! constant-time comparison every token check uses, and mode 0600 for the
//! SQLite files that hold WSI tokens, request lines and cookies.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::RngCore;

/// File name of the agent token inside the data dir.
pub const AGENT_TOKEN_FILE: &str = "agent.token";

/// File name of the admin token inside the data dir.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// Reads the admin token, creating a random one if there is none.
pub fn load_or_create_admin(data_dir: &Path) -> std::io::Result<String> {
    load_or_create(&data_dir.join(ADMIN_TOKEN_FILE))
}

/// Mode of every file usher writes that holds a secret: owner only.
pub const PRIVATE_MODE: u32 = 0o600;

/// Reads the token at `path`, or creates it (64 hex digits, mode 0600). An
/// existing file is set to mode 0600 too.
pub fn load_or_create(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => {
            make_private(path)?;
            return Ok(t.trim().to_string());
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(PRIVATE_MODE)
        .open(path)?;
    // `mode` applies only when the file is created.
    f.set_permissions(std::fs::Permissions::from_mode(PRIVATE_MODE))?;
    f.write_all(token.as_bytes())?;
    f.write_all(b"\n")?;
    Ok(token)
}

/// Compares two byte strings in time that depends only on their lengths,
/// never on where they differ (a different length is `false` at once: the
/// length of a token is no secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Constant-time comparison of an `Authorization` header with `Bearer <token>`.
pub fn bearer_matches(header: Option<&str>, token: &str) -> bool {
    let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return false;
    };
    constant_time_eq(given.trim().as_bytes(), token.as_bytes())
}

/// Sets mode 0600 on `path`.
pub fn make_private(path: &Path) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(PRIVATE_MODE))
}

/// Readies a SQLite database file to be opened privately: creates it empty
/// with mode 0600 when missing (SQLite then gives the `-wal` and `-shm`
/// files it creates the database file's mode), and sets mode 0600 on the
/// file and on whichever of its `-wal` and `-shm` files exist (a database
/// made by an older usher). Call before opening and again after the first
/// write.
pub fn make_db_private(db: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(PRIVATE_MODE)
        .open(db)?;
    make_private(db)?;
    for suffix in ["-wal", "-shm"] {
        let mut companion = db.as_os_str().to_owned();
        companion.push(suffix);
        match make_private(&PathBuf::from(companion)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("meta").permissions().mode() & 0o777
    }

    #[test]
    fn created_once_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join(AGENT_TOKEN_FILE);
        let t = load_or_create(&p).expect("create");
        assert_eq!(t.len(), 64);
        assert_eq!(load_or_create(&p).expect("again"), t);
        assert_eq!(mode(&p), 0o600);
        assert!(bearer_matches(Some(&format!("Bearer {t}")), &t));
        assert!(!bearer_matches(Some("Bearer nope"), &t));
        assert!(!bearer_matches(None, &t));
    }

    #[test]
    fn an_existing_readable_token_file_becomes_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join(AGENT_TOKEN_FILE);
        std::fs::write(&p, "old-token\n").expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(load_or_create(&p).expect("read"), "old-token");
        assert_eq!(mode(&p), 0o600);
    }

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"sekrit", b"sekrit"));
        assert!(!constant_time_eq(b"sekrit", b"sekriT"));
        assert!(!constant_time_eq(b"Sekrit", b"sekrit"));
        assert!(!constant_time_eq(b"sekrit", b"sekrit!"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(!bearer_matches(Some("Bearer sekri"), "sekrit"));
        assert!(!bearer_matches(Some("bearer sekrit"), "sekrit"));
        assert!(bearer_matches(Some("Bearer sekrit "), "sekrit"));
    }

    #[test]
    fn sqlite_files_are_0600_with_their_wal_and_shm() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("x.db");
        make_db_private(&db).expect("private");
        let conn = rusqlite::Connection::open(&db).expect("open");
        conn.pragma_update(None, "journal_mode", "WAL")
            .expect("wal");
        conn.execute_batch("CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('cookie');")
            .expect("write");
        for name in ["x.db", "x.db-wal", "x.db-shm"] {
            assert_eq!(mode(&dir.path().join(name)), 0o600, "{name}");
        }
        drop(conn);

        // A database an older usher left readable is made private.
        let old = dir.path().join("old.db");
        let conn = rusqlite::Connection::open(&old).expect("open");
        conn.pragma_update(None, "journal_mode", "WAL")
            .expect("wal");
        conn.execute_batch("CREATE TABLE t (v TEXT);")
            .expect("write");
        for name in ["old.db", "old.db-wal", "old.db-shm"] {
            std::fs::set_permissions(
                dir.path().join(name),
                std::fs::Permissions::from_mode(0o644),
            )
            .expect("chmod");
        }
        make_db_private(&old).expect("private");
        for name in ["old.db", "old.db-wal", "old.db-shm"] {
            assert_eq!(mode(&dir.path().join(name)), 0o600, "{name}");
        }
    }

    #[test]
    fn admin_token_created_once_with_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = load_or_create_admin(dir.path()).expect("create");
        assert_eq!(t.len(), 64);
        let mode = std::fs::metadata(dir.path().join(ADMIN_TOKEN_FILE))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create_admin(dir.path()).expect("read"), t);
        assert!(bearer_matches(Some(&format!("Bearer {t}")), &t));
        assert!(!bearer_matches(Some("Bearer x"), &t));
        assert!(!bearer_matches(None, &t));
        assert!(!bearer_matches(Some(&t), &t));
    }
}
