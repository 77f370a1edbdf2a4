//! Tokens and the files that hold secrets: the admin token
//! (`<data_dir>/admin.token`) and the agent token (`<data_dir>/agent.token`),
//! both mode 0600 and made on first start; the bearer check (the shared
//! constant-time `usher_core::token` comparison), and mode 0600 for the
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
    let token = random_token();
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

/// Whether an `Authorization` header is `Bearer <token>`: the one
/// constant-time comparison of every usher host (`usher_core::token`).
pub fn bearer_matches(header: Option<&str>, token: &str) -> bool {
    usher_core::token::bearer_matches(header.map(str::as_bytes), token.as_bytes())
}

/// A new random token: 32 bytes from the OS-seeded generator, as 64 hex
/// digits.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a per-agent token, as 64 lowercase hex digits: what
/// `usher.db` keeps instead of the token, so a copy of the database (a
/// backup, a support bundle) lets nobody speak for an agent. The tokens
/// usher issues are 256 random bits, so an unsalted fast hash is enough:
/// there is nothing to guess.
pub fn agent_token_sha256(token: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, token.trim().as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The token of an `Authorization: Bearer <token>` header (trimmed), if
/// the header has that form.
pub fn bearer_token(header: Option<&str>) -> Option<&str> {
    header
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
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
    fn agent_tokens_hash_to_sha256_hex() {
        // The SHA-256 test vector for "abc".
        assert_eq!(
            agent_token_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(agent_token_sha256(" abc\n"), agent_token_sha256("abc"));
        let t = random_token();
        assert_eq!(t.len(), 64);
        assert_ne!(t, random_token());
        assert_eq!(bearer_token(Some("Bearer  x ")), Some("x"));
        assert_eq!(bearer_token(Some("Bearer ")), None);
        assert_eq!(bearer_token(Some("Basic x")), None);
        assert_eq!(bearer_token(None), None);
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
    fn bearer_matches_compares_whole_tokens() {
        assert!(!bearer_matches(Some("Bearer sekriT"), "sekrit"));
        assert!(!bearer_matches(Some("Bearer sekrit!"), "sekrit"));
        assert!(!bearer_matches(Some("Bearer "), ""));
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
