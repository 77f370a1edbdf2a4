//! Bearer tokens: the one rule for what a token may look like and the one
//! comparison every usher host uses (the control plane's admin API and
//! agent channel, the agent's batch receiver, the nginx module's and the
//! Envoy filter's command endpoints).
//!
//! The comparison takes time that depends only on the lengths, never on
//! where the bytes differ, so a caller who can time answers learns nothing
//! about a token's content. Pure and allocation-free: it runs inside the
//! Envoy filter's wasm VM and the nginx worker.

/// Fewest characters a token may have (the nginx module's rule since its
/// first version; every other host now keeps the same one).
pub const MIN_TOKEN_LEN: usize = 8;

/// What a refused token is told, after the name of its field or directive.
pub const TOKEN_RULE: &str = "the token must be at least 8 printable characters without spaces";

/// Whether `token` keeps the rule: at least [`MIN_TOKEN_LEN`] bytes, each
/// a printable ASCII character other than space.
pub fn token_is_acceptable(token: &str) -> bool {
    token.len() >= MIN_TOKEN_LEN && token.bytes().all(|b| b.is_ascii_graphic())
}

/// Whether `a` and `b` are the same bytes, in time that depends only on
/// their lengths (a different length is `false` at once: the length of a
/// token is no secret).
pub fn token_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Whether an `Authorization` header value is `Bearer <token>` (the scheme
/// spelled exactly so, surrounding white space of the token ignored).
/// An empty `token` never matches, so an unset token cannot open a door.
pub fn bearer_matches(header: Option<&[u8]>, token: &[u8]) -> bool {
    let Some(given) = header.and_then(|h| h.strip_prefix(b"Bearer ")) else {
        return false;
    };
    !token.is_empty() && token_eq(given.trim_ascii(), token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_for_the_same_bytes() {
        assert!(token_eq(b"", b""));
        assert!(token_eq(b"sekrit-token", b"sekrit-token"));
        assert!(!token_eq(b"sekrit-token", b"sekrit-tokeN"));
        assert!(!token_eq(b"Sekrit-token", b"sekrit-token"));
        assert!(!token_eq(b"sekrit-token", b"sekrit-token!"));
        assert!(!token_eq(b"sekrit", b"sekrit-token"));
        assert!(!token_eq(b"", b"x"));
    }

    #[test]
    fn bearer_header_needs_the_scheme_and_the_whole_token() {
        let t = b"sekrit-token";
        assert!(bearer_matches(Some(b"Bearer sekrit-token"), t));
        assert!(bearer_matches(Some(b"Bearer sekrit-token \t"), t));
        assert!(!bearer_matches(Some(b"bearer sekrit-token"), t));
        assert!(!bearer_matches(Some(b"Basic sekrit-token"), t));
        assert!(!bearer_matches(Some(b"sekrit-token"), t));
        assert!(!bearer_matches(Some(b"Bearer sekrit-tokem"), t));
        assert!(!bearer_matches(Some(b"Bearer sekrit"), t));
        assert!(!bearer_matches(Some(b"Bearer sekrit-token2"), t));
        assert!(!bearer_matches(Some(b"Bearer "), t));
        assert!(!bearer_matches(Some(b""), t));
        assert!(!bearer_matches(None, t));
    }

    #[test]
    fn an_empty_token_opens_nothing() {
        assert!(!bearer_matches(Some(b"Bearer "), b""));
        assert!(!bearer_matches(Some(b"Bearer  "), b""));
        assert!(!bearer_matches(None, b""));
    }

    #[test]
    fn the_token_rule() {
        assert!(token_is_acceptable("12345678"));
        assert!(token_is_acceptable("cmd-token-for-tests"));
        assert!(!token_is_acceptable("1234567"), "7 characters");
        assert!(!token_is_acceptable("x"));
        assert!(!token_is_acceptable(""));
        assert!(!token_is_acceptable("1234 5678"), "space");
        assert!(!token_is_acceptable("12345678\n"), "control character");
        assert!(!token_is_acceptable("sekrét-token"), "not ASCII");
    }
}
