//! The emulator clock: system time, or a frozen instant set by `MLOPS_NOW` or `/_emulator/clock`.

use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};

use crate::EmulatorError;

/// Environment variable that freezes the clock at an RFC 3339 instant.
pub(crate) const NOW_VARIABLE: &str = "MLOPS_NOW";

/// The current time of an emulator.
pub(crate) struct Clock {
    frozen: Mutex<Option<Timestamp>>,
}

impl Clock {
    /// Creates a clock frozen at `MLOPS_NOW` when that variable is set, or following system time.
    pub fn from_env() -> Result<Self, EmulatorError> {
        let frozen = match std::env::var(NOW_VARIABLE) {
            Ok(value) => Some(parse_now(&value)?),
            Err(_) => None,
        };
        Ok(Self {
            frozen: Mutex::new(frozen),
        })
    }

    /// Returns the current emulator time.
    pub fn now(&self) -> Timestamp {
        self.frozen().unwrap_or_else(Timestamp::now)
    }

    /// Returns the current emulator time in epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.now().as_millisecond()
    }

    /// Returns the frozen instant, or `None` when the clock follows system time.
    pub fn frozen(&self) -> Option<Timestamp> {
        *self
            .frozen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Freezes the clock at `now`, or lets it follow system time again when `now` is `None`.
    pub fn set(&self, now: Option<Timestamp>) {
        *self
            .frozen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = now;
    }

    /// Moves a frozen clock forward by `seconds`; a clock on system time is frozen first.
    pub fn advance(&self, seconds: i64) -> Result<Timestamp, jiff::Error> {
        let mut frozen = self
            .frozen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let next = frozen
            .unwrap_or_else(Timestamp::now)
            .checked_add(SignedDuration::from_secs(seconds))?;
        *frozen = Some(next);
        Ok(next)
    }
}

/// Parses an `MLOPS_NOW` value.
fn parse_now(value: &str) -> Result<Timestamp, EmulatorError> {
    value
        .parse::<Timestamp>()
        .map_err(|_| EmulatorError::InvalidEnvironment {
            variable: NOW_VARIABLE,
            value: value.to_owned(),
            expected: "an RFC 3339 timestamp such as 2026-01-01T00:00:00Z",
        })
}
