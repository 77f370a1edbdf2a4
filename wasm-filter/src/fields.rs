//! Small parsers for request-record fields taken from HTTP headers.

/// A header map as the host serializes it for `proxy_get_header_map_pairs`
/// (`u32` count, `count` × (`u32` key length, `u32` value length), then each
/// key and value followed by a NUL byte), read in place: looking a value up
/// allocates nothing. A malformed buffer reads as an empty map.
#[derive(Debug, Default)]
pub struct HeaderPairs {
    bytes: Vec<u8>,
}

impl HeaderPairs {
    pub fn new(bytes: Vec<u8>) -> HeaderPairs {
        HeaderPairs { bytes }
    }

    fn u32_at(&self, at: usize) -> Option<usize> {
        let b = self.bytes.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    /// The first value of header `name` (ASCII case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        let count = self.u32_at(0)?;
        let mut p = 4usize.checked_add(count.checked_mul(8)?)?;
        for n in 0..count {
            let klen = self.u32_at(4 + n * 8)?;
            let vlen = self.u32_at(8 + n * 8)?;
            let key = self.bytes.get(p..p.checked_add(klen)?)?;
            p += klen + 1;
            let value = self.bytes.get(p..p.checked_add(vlen)?)?;
            p += vlen + 1;
            if key.eq_ignore_ascii_case(name.as_bytes()) {
                return std::str::from_utf8(value).ok();
            }
        }
        None
    }
}

/// The scheme of an `Authorization` header (`Basic`, `Bearer`, ...).
pub fn auth_type(authorization: &str) -> Option<String> {
    let scheme = authorization.split_whitespace().next()?;
    scheme
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        .then(|| scheme.to_string())
}

/// The path of a `:path` without its query.
pub fn content_path(path_and_query: &str) -> &str {
    path_and_query.split('?').next().unwrap_or("")
}

/// Seconds since the epoch of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn http_date_secs(date: &str) -> Option<u64> {
    let mut parts = date.split_whitespace().skip(1);
    let day: u64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if parts.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days)
        .ok()
        .map(|d| d * 86_400 + h * 3600 + m * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serialize(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (k, v) in pairs {
            out.extend((k.len() as u32).to_le_bytes());
            out.extend((v.len() as u32).to_le_bytes());
        }
        for (k, v) in pairs {
            out.extend(k.as_bytes());
            out.push(0);
            out.extend(v.as_bytes());
            out.push(0);
        }
        out
    }

    #[test]
    fn header_pairs() {
        let h = HeaderPairs::new(serialize(&[
            (":method", "GET"),
            (":path", "/a?b"),
            ("empty", ""),
            ("cookie", "usher_session=1"),
        ]));
        assert_eq!(h.get(":method"), Some("GET"));
        assert_eq!(h.get(":path"), Some("/a?b"));
        assert_eq!(h.get("empty"), Some(""));
        assert_eq!(h.get("Cookie"), Some("usher_session=1"));
        assert_eq!(h.get("accept"), None);
        assert_eq!(HeaderPairs::default().get(":path"), None);
        let mut cut = serialize(&[(":path", "/long-value")]);
        cut.truncate(cut.len() - 4);
        assert_eq!(HeaderPairs::new(cut).get(":path"), None);
        assert_eq!(HeaderPairs::new(vec![255, 255, 255, 255]).get("x"), None);
    }

    #[test]
    fn parses() {
        assert_eq!(
            http_date_secs("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(http_date_secs("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(http_date_secs("Sun, 06 Nov 1994 08:49:37 PST"), None);
        assert_eq!(http_date_secs("garbage"), None);
        assert_eq!(auth_type("Basic dXNlcjpwYXNz"), Some("Basic".into()));
        assert_eq!(content_path("/a/b?c=d"), "/a/b");
    }
}
