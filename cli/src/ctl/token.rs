//! Where the admin token comes from: `--token-file`, else `USHER_TOKEN`.

use std::path::Path;

use super::args::CtlArgs;
use super::client::CtlError;

pub(super) fn token(args: &CtlArgs) -> Result<String, CtlError> {
    read_token(
        args.token_file.as_deref(),
        std::env::var("USHER_TOKEN").ok(),
    )
}

/// The admin token from the file when given, else from `USHER_TOKEN`.
pub(super) fn read_token(file: Option<&Path>, env: Option<String>) -> Result<String, CtlError> {
    if let Some(path) = file {
        let t = std::fs::read_to_string(path).map_err(|e| {
            CtlError::Local(format!("cannot read token file {}: {e}", path.display()))
        })?;
        let t = t.trim();
        if t.is_empty() {
            return Err(CtlError::Local(format!(
                "token file {} is empty (the control plane writes it as <data_dir>/admin.token)",
                path.display()
            )));
        }
        return Ok(t.to_string());
    }
    match env {
        Some(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
        Some(_) => Err(CtlError::Local(
            "USHER_TOKEN is empty: set it to the contents of <data_dir>/admin.token".into(),
        )),
        None => Err(CtlError::Local(
            "no admin token: pass --token-file <data_dir>/admin.token or set USHER_TOKEN".into(),
        )),
    }
}
