//! A `WHERE` clause built from optional filters, with numbered binds.

use rusqlite::types::Value;

#[derive(Default)]
pub struct Where {
    parts: Vec<String>,
    pub binds: Vec<Value>,
}

impl Where {
    /// Adds `cond`; every `?` in it refers to the one value `v`.
    pub fn add(&mut self, cond: &str, v: Value) {
        self.binds.push(v);
        self.parts
            .push(cond.replace('?', &format!("?{}", self.binds.len())));
    }

    pub fn sql(&self) -> String {
        if self.parts.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.parts.join(" AND "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_question_mark_is_the_one_bind() {
        let mut w = Where::default();
        assert_eq!(w.sql(), "");
        w.add("a = ?", Value::Integer(1));
        w.add("(b = ? OR c = ?)", Value::Integer(2));
        assert_eq!(w.sql(), " WHERE a = ?1 AND (b = ?2 OR c = ?2)");
        assert_eq!(w.binds.len(), 2);
    }
}
