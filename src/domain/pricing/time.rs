//! Wall-clock time in the store's zone, as promotion windows are written ("from Friday 18:00").
//!
//! The engine never converts zones: the caller gives it the local time (see
//! `crate::store::pricing` for the node, the quote handler for HQ).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::PrimitiveDateTime;
use time::macros::format_description;

/// A local date and minute, written `2026-12-24T18:00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalDateTime(PrimitiveDateTime);

/// A local time of day, written `18:00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalTime(u16);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl LocalDateTime {
    pub fn new(at: PrimitiveDateTime) -> Self {
        Self(at)
    }

    /// From calendar parts; `None` when they name no real minute.
    pub fn from_parts(year: i32, month: u8, day: u8, hour: u8, minute: u8) -> Option<Self> {
        let month = time::Month::try_from(month).ok()?;
        let date = time::Date::from_calendar_date(year, month, day).ok()?;
        let time = time::Time::from_hms(hour, minute, 0).ok()?;
        Some(Self(PrimitiveDateTime::new(date, time)))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let format = format_description!("[year]-[month]-[day]T[hour]:[minute]");
        PrimitiveDateTime::parse(text, format)
            .map(Self)
            .map_err(|_| format!("{text:?} is not a local time like 2026-12-24T18:00"))
    }

    pub fn weekday(self) -> Weekday {
        match self.0.weekday() {
            time::Weekday::Monday => Weekday::Mon,
            time::Weekday::Tuesday => Weekday::Tue,
            time::Weekday::Wednesday => Weekday::Wed,
            time::Weekday::Thursday => Weekday::Thu,
            time::Weekday::Friday => Weekday::Fri,
            time::Weekday::Saturday => Weekday::Sat,
            time::Weekday::Sunday => Weekday::Sun,
        }
    }

    pub fn time(self) -> LocalTime {
        LocalTime(u16::from(self.0.hour()) * 60 + u16::from(self.0.minute()))
    }
}

impl fmt::Display for LocalDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (d, t) = (self.0.date(), self.0.time());
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}",
            d.year(),
            u8::from(d.month()),
            d.day(),
            t.hour(),
            t.minute()
        )
    }
}

impl LocalTime {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a time of day like 18:00");
        let (h, m) = text.split_once(':').ok_or_else(bad)?;
        let valid = h.len() == 2 && m.len() == 2;
        let h: u16 = h.parse().map_err(|_| bad())?;
        let m: u16 = m.parse().map_err(|_| bad())?;
        if !valid || h > 23 || m > 59 {
            return Err(bad());
        }
        Ok(Self(h * 60 + m))
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl Serialize for LocalDateTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LocalDateTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for LocalTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LocalTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_local_times() {
        let at = LocalDateTime::parse("2026-12-24T18:05").unwrap();
        assert_eq!(at.to_string(), "2026-12-24T18:05");
        assert_eq!(at.weekday(), Weekday::Thu);
        assert_eq!(at.time(), LocalTime::parse("18:05").unwrap());
        assert!(LocalDateTime::parse("2026-12-24 18:05").is_err());
        assert!(LocalTime::parse("24:00").is_err());
        assert!(LocalTime::parse("8:00").is_err());
        let json: LocalTime = serde_json::from_str("\"07:30\"").unwrap();
        assert_eq!(serde_json::to_string(&json).unwrap(), "\"07:30\"");
    }
}
