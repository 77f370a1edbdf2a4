//! The built-in sorry page, shown with 503 when an app is disabled and no
//! sorry page is configured.

/// HTML of the built-in sorry page.
pub const BUILT_IN_SORRY_PAGE: &str = "<!DOCTYPE html>
<html><head><meta charset=\"utf-8\"><title>Service unavailable</title></head>
<body><h1>Sorry</h1><p>This service is not available right now. Please try again in a few minutes.</p></body></html>
";

/// Body of the 503 answer when no server is available and no sorry page is configured.
pub const NO_SERVER_BODY: &str = "503 Service Unavailable: no server is available\n";

/// Body of the 503 answer when the app's concurrent-request limit is reached.
pub const BUSY_BODY: &str = "503 Service Unavailable: too many requests in progress\n";
