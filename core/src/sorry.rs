//! The built-in sorry page: the HTML every front door (the nginx module, the
//! Envoy filter, the control plane's own front door) answers with 503 when
//! an application is disabled and the operator configured no page of its
//! own. One text, so a user sees the same page whichever door they came
//! through; `nginx/sorry.html` is a copy of it (a test checks that).

/// Largest sorry page any usher host accepts (64 KiB): the nginx module's
/// `usher_sorry_page`, the Envoy filter's `sorry_page` and the control
/// plane's sorry pages. A page travels inside every interceptor snapshot,
/// which the hosts cap at `snapshot::MAX_SNAPSHOT_BYTES` (256 KiB), so one
/// cap everywhere keeps a page that one host takes from being refused by
/// another.
pub const MAX_SORRY_PAGE_BYTES: usize = 64 * 1024;

/// HTML of the built-in sorry page (UTF-8, ends with a newline).
pub const BUILT_IN_SORRY_PAGE: &str = "<!DOCTYPE html>
<html lang=\"en\">
<head><meta charset=\"utf-8\"><title>Service unavailable</title></head>
<body>
<h1>Sorry</h1>
<p>This service is not available right now. Please try again in a few minutes.</p>
</body>
</html>
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_sorry_html_is_the_built_in_page() {
        assert_eq!(
            include_str!("../../nginx/sorry.html"),
            BUILT_IN_SORRY_PAGE,
            "nginx/sorry.html must hold exactly usher_core::sorry::BUILT_IN_SORRY_PAGE"
        );
    }

    #[test]
    fn page_is_small_complete_html() {
        assert!(BUILT_IN_SORRY_PAGE.starts_with("<!DOCTYPE html>"));
        assert!(BUILT_IN_SORRY_PAGE.trim_end().ends_with("</html>"));
        assert!(BUILT_IN_SORRY_PAGE.contains("<h1>Sorry</h1>"));
        assert!(BUILT_IN_SORRY_PAGE.len() < 1024);
        const { assert!(MAX_SORRY_PAGE_BYTES * 3 < crate::snapshot::MAX_SNAPSHOT_BYTES) };
    }
}
