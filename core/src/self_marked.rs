//! Pages that mark themselves stateful.
//!
//! Besides the pages an operator lists (exact paths, prefixes) and the
//! session cookie, the design's fourth kind of stateful page is one the
//! application marks itself: its response carries `Usher-Stateful: 1` (or
//! `true`; the header name is case-insensitive). A web server interface
//! remembers the path of such a response ([`SelfMarked::remember`]) and from
//! then on never redirects a request for it ([`SelfMarked::contains`]).
//!
//! The memory is **per worker**: every nginx worker and every Envoy worker VM
//! learns on its own, from the responses it served itself, with no lock or
//! shared area between workers. So a worker that has never served a page
//! does not know it is stateful: while a redirect order is in force, the
//! first request for that page to reach such a worker is redirected like any
//! other stateless page (and, being redirected, teaches that worker nothing).
//! A page is protected on a worker once that worker has served it; an
//! application that needs it protected on every worker from the first
//! request lists it in the redirect rules (`stateful`, `stateful_prefixes`).
//!
//! The memory is bounded: at most [`MAX_SELF_MARKED`] paths (each at most
//! [`MAX_SELF_MARKED_PATH`] bytes; longer ones are ignored). When it is full
//! the oldest path is forgotten first, except that a path marked again since
//! it was last passed over gets a second chance (the CLOCK scheme): a page
//! that keeps being served, and so keeps marking itself, stays remembered,
//! while one seen once long ago gives way. Pure: no I/O, no clock, no lock.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// The response header a page marks itself stateful with (lower case; the
/// name compares case-insensitively).
pub const SELF_MARK_HEADER: &str = "usher-stateful";

/// Most paths one worker remembers.
pub const MAX_SELF_MARKED: usize = 4096;

/// Longest path remembered, in bytes; a longer one is ignored.
pub const MAX_SELF_MARKED_PATH: usize = 1024;

/// True when a header name is [`SELF_MARK_HEADER`] (any case).
pub fn is_self_mark_header(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(SELF_MARK_HEADER.as_bytes())
}

/// True when a `Usher-Stateful` value marks the page stateful: `1` or `true`
/// (any case), surrounding white space ignored. Anything else (`0`, `false`,
/// empty, `yes`) does not.
pub fn marks_stateful(value: &str) -> bool {
    let v = value.trim();
    v == "1" || v.eq_ignore_ascii_case("true")
}

/// The path part of a path that may carry a query.
fn path_only(path: &str) -> &str {
    path.split_once('?').map_or(path, |(p, _)| p)
}

/// One worker's bounded memory of self-marked paths.
#[derive(Debug, Clone)]
pub struct SelfMarked {
    /// Remembered paths and their second-chance bit.
    marked: HashMap<Arc<str>, bool>,
    /// The same paths, oldest (next to be looked at for eviction) first.
    order: VecDeque<Arc<str>>,
    capacity: usize,
}

impl Default for SelfMarked {
    fn default() -> Self {
        Self::new()
    }
}

impl SelfMarked {
    /// An empty memory of at most [`MAX_SELF_MARKED`] paths.
    pub fn new() -> Self {
        Self::with_capacity(MAX_SELF_MARKED)
    }

    /// An empty memory of at most `capacity` paths (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        SelfMarked {
            marked: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Remembers that `path` (its part before any `?`) marked itself
    /// stateful. Returns true when the path was not known before. A path
    /// that does not start with `/` or is longer than
    /// [`MAX_SELF_MARKED_PATH`] is ignored (false). A known path is kept
    /// (its second chance renewed); a new one may make the memory forget one
    /// path when it is full.
    pub fn remember(&mut self, path: &str) -> bool {
        let path = path_only(path);
        if !path.starts_with('/') || path.len() > MAX_SELF_MARKED_PATH {
            return false;
        }
        if let Some(again) = self.marked.get_mut(path) {
            *again = true;
            return false;
        }
        if self.marked.len() >= self.capacity {
            self.forget_one();
        }
        let path: Arc<str> = Arc::from(path);
        self.marked.insert(path.clone(), false);
        self.order.push_back(path);
        true
    }

    /// True when `path` (its part before any `?`) is remembered.
    #[inline]
    pub fn contains(&self, path: &str) -> bool {
        // Nothing marked (the common case): no hashing at all.
        !self.marked.is_empty() && self.marked.contains_key(path_only(path))
    }

    /// Paths remembered.
    pub fn len(&self) -> usize {
        self.marked.len()
    }

    /// True when no path is remembered.
    pub fn is_empty(&self) -> bool {
        self.marked.is_empty()
    }

    /// Most paths remembered at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets the oldest path without a second chance. Each path passed
    /// over loses its chance and goes to the back, so this ends within one
    /// round of the queue.
    fn forget_one(&mut self) {
        while let Some(path) = self.order.pop_front() {
            match self.marked.get_mut(&path) {
                Some(again) if *again => {
                    *again = false;
                    self.order.push_back(path);
                }
                Some(_) => {
                    self.marked.remove(&path);
                    return;
                }
                // Not reachable (both hold the same paths); dropping the
                // stray entry keeps the two consistent anyway.
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_values_that_mark() {
        for v in ["1", "true", "TRUE", "True", " 1 ", "\ttrue"] {
            assert!(marks_stateful(v), "{v:?}");
        }
        for v in ["", "0", "false", "yes", "2", "11", "1,1", "on", "t"] {
            assert!(!marks_stateful(v), "{v:?}");
        }
        assert!(is_self_mark_header(b"Usher-Stateful"));
        assert!(is_self_mark_header(b"USHER-STATEFUL"));
        assert!(is_self_mark_header(b"usher-stateful"));
        assert!(!is_self_mark_header(b"usher-stateful2"));
        assert!(!is_self_mark_header(b"x-usher-stateful"));
    }

    #[test]
    fn remembers_paths_without_query() {
        let mut m = SelfMarked::new();
        assert!(m.is_empty());
        assert!(!m.contains("/account"));
        assert!(m.remember("/account?tab=orders"));
        assert!(m.contains("/account"));
        assert!(m.contains("/account?x=1"));
        assert!(!m.contains("/account/"));
        assert!(!m.contains("/accounts"));
        assert!(!m.remember("/account"), "already known");
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn odd_and_long_paths_are_ignored() {
        let mut m = SelfMarked::new();
        assert!(!m.remember(""));
        assert!(!m.remember("*"));
        assert!(!m.remember("http://example.com/a"));
        let long = format!("/{}", "a".repeat(MAX_SELF_MARKED_PATH));
        assert!(!m.remember(&long));
        assert!(!m.contains(&long));
        let just = format!("/{}", "a".repeat(MAX_SELF_MARKED_PATH - 1));
        assert!(m.remember(&just));
        assert!(m.contains(&just));
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn oldest_is_forgotten_first() {
        let mut m = SelfMarked::with_capacity(3);
        for p in ["/a", "/b", "/c", "/d"] {
            assert!(m.remember(p));
        }
        assert_eq!(m.len(), 3);
        assert!(!m.contains("/a"), "oldest forgotten");
        for p in ["/b", "/c", "/d"] {
            assert!(m.contains(p), "{p}");
        }
    }

    #[test]
    fn a_page_marked_again_gets_a_second_chance() {
        let mut m = SelfMarked::with_capacity(3);
        for p in ["/a", "/b", "/c"] {
            m.remember(p);
        }
        // /a keeps being served (and marking itself): /b goes instead.
        assert!(!m.remember("/a"));
        assert!(m.remember("/d"));
        assert!(m.contains("/a"));
        assert!(!m.contains("/b"));
        assert!(m.contains("/c") && m.contains("/d"));
        // Its chance used up, /a is the oldest again once /c has gone.
        assert!(m.remember("/e"));
        assert!(!m.contains("/c"));
        assert!(m.remember("/f"));
        assert!(!m.contains("/a"));
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn a_full_default_memory_stays_at_its_bound() {
        let mut m = SelfMarked::new();
        for i in 0..(MAX_SELF_MARKED + 100) {
            m.remember(&format!("/p/{i}"));
        }
        assert_eq!(m.len(), MAX_SELF_MARKED);
        assert!(!m.contains("/p/0"));
        assert!(!m.contains("/p/99"));
        assert!(m.contains("/p/100"));
        assert!(m.contains(&format!("/p/{}", MAX_SELF_MARKED + 99)));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Remember(u8),
        Contains(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..24).prop_map(Op::Remember),
            (0u8..24).prop_map(Op::Contains),
        ]
    }

    proptest! {
        /// Never beyond its bound; a remembered path is found until it is
        /// evicted; an eviction happens only when a new path comes into a
        /// full memory, and takes exactly one path.
        #[test]
        fn bounded_and_found_until_evicted(cap in 1usize..8, ops in proptest::collection::vec(op(), 0..200)) {
            let mut m = SelfMarked::with_capacity(cap);
            let mut known: std::collections::BTreeSet<String> = Default::default();
            for op in ops {
                match op {
                    Op::Remember(i) => {
                        let path = format!("/p{i}");
                        let was_full = m.len() == cap;
                        let new = m.remember(&path);
                        prop_assert_eq!(new, !known.contains(&path));
                        prop_assert!(m.contains(&path), "just remembered");
                        let before = known.len();
                        if new {
                            known.insert(path.clone());
                        }
                        let gone: Vec<String> =
                            known.iter().filter(|p| !m.contains(p)).cloned().collect();
                        if new && was_full {
                            prop_assert_eq!(gone.len(), 1, "one path forgotten");
                        } else {
                            prop_assert!(gone.is_empty(), "nothing forgotten: {:?}", gone);
                        }
                        for g in &gone {
                            known.remove(g);
                        }
                        prop_assert!(known.len() <= before + 1);
                    }
                    Op::Contains(i) => {
                        let path = format!("/p{i}");
                        prop_assert_eq!(m.contains(&path), known.contains(&path));
                    }
                }
                prop_assert!(m.len() <= cap);
                prop_assert_eq!(m.len(), known.len());
                prop_assert_eq!(m.order.len(), m.marked.len());
            }
        }

        /// With no path marked twice, the memory is a plain FIFO window: the
        /// last `cap` distinct paths.
        #[test]
        fn distinct_paths_keep_the_newest(cap in 1usize..16, n in 0usize..64) {
            let mut m = SelfMarked::with_capacity(cap);
            for i in 0..n {
                let path = format!("/x/{i}");
                prop_assert!(m.remember(&path));
            }
            for i in 0..n {
                let path = format!("/x/{i}");
                prop_assert_eq!(m.contains(&path), i + cap >= n);
            }
        }
    }
}
