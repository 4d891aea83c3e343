//! Errors in tests and benchmarks: a boxed error any failure converts into, and `context` to say what was being
//! done when an `Option` was empty or a call failed.

use std::fmt::Display;

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds what was being done to a missing value or a failure.
pub trait Context<T> {
    fn context(self, what: impl Display) -> Result<T>;
    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: impl Display) -> Result<T> {
        self.ok_or_else(|| what.to_string().into())
    }

    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.ok_or_else(|| what().to_string().into())
    }
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Display) -> Result<T> {
        self.map_err(|e| format!("{what}: {e}").into())
    }

    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| format!("{}: {e}", what()).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_names_what_was_being_done() {
        let missing: Option<u8> = None;
        assert_eq!(missing.context("no audio").unwrap_err().to_string(), "no audio");
        let failed: std::result::Result<u8, std::num::ParseIntError> = "x".parse::<u8>();
        let e = failed.with_context(|| "reading the level").unwrap_err();
        assert_eq!(e.to_string(), "reading the level: invalid digit found in string");
    }
}
