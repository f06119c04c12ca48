//! neo4j-admin's text forms of the temporal and spatial types, parsed into
//! [`Cell`]s: pure functions, one per type, each either a value or a message
//! that names what is wrong. Written from Neo4j's documented formats
//! (Cypher manual, "Temporal values" and "Spatial values"; operations manual,
//! `neo4j-admin database import`):
//!
//! | type | examples |
//! |---|---|
//! | `date` | `2015-07-04` |
//! | `localtime` | `12:50:35`, `12:50:35.556` |
//! | `time` | `12:50:35.556+01:00`, `12:50:35Z` (no offset: UTC, neo4j-admin's default time zone) |
//! | `localdatetime` | `2015-07-04T19:32:24`, `2015-07-04T19:32:24.123456789` |
//! | `datetime` | `2015-06-24T12:50:35.556+01:00`, `…Z`, `2015-07-04T19:32:24[Europe/Berlin]`, no zone: UTC |
//! | `duration` | `P14DT16H12M`, `P1Y2M3W4DT5H6M7.5S`, `PT0.5S`, `-P1D` |
//! | `point` | `{latitude: 13.1, longitude: 56.2}`, `{x: 1, y: 2, z: 3}`, `{crs: 'WGS-84-3D', latitude: 1, longitude: 2, height: 3}` |

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;

use crate::adapters::graph::values::{Cell, Duration, Point};

/// A `date` (`YYYY-MM-DD`).
pub fn date(s: &str) -> Result<Cell, String> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map(Cell::Date)
        .map_err(|e| format!("`{s}` is not a date (YYYY-MM-DD): {e}"))
}

fn naive_time(s: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(s, "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
        .map_err(|e| format!("`{s}` is not a time (HH:MM:SS[.fffffffff]): {e}"))
}

/// A `localtime` (`HH:MM:SS[.fffffffff]`).
pub fn localtime(s: &str) -> Result<Cell, String> {
    naive_time(s.trim()).map(Cell::LocalTime)
}

/// Splits a trailing `Z`, `+HH:MM`, `-HH:MM`, `+HHMM` or `+HH` offset.
fn split_offset(s: &str) -> Result<(&str, Option<FixedOffset>), String> {
    if let Some(rest) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        return Ok((rest, FixedOffset::east_opt(0)));
    }
    let Some(pos) = s.rfind(['+', '-']) else {
        return Ok((s, None));
    };
    // A `-` inside the date part (before any `:`) is not an offset.
    if pos == 0 || !s[..pos].contains(':') {
        return Ok((s, None));
    }
    let (head, off) = s.split_at(pos);
    let sign = if off.starts_with('-') { -1 } else { 1 };
    let digits: String = off[1..].chars().filter(|c| *c != ':').collect();
    let bad = || format!("`{s}`: `{off}` is not a time zone offset (+HH:MM)");
    if !digits.chars().all(|c| c.is_ascii_digit()) || !(digits.len() == 2 || digits.len() == 4) {
        return Err(bad());
    }
    let hours: i32 = digits[..2].parse().map_err(|_| bad())?;
    let minutes: i32 = if digits.len() == 4 {
        digits[2..].parse().map_err(|_| bad())?
    } else {
        0
    };
    if hours > 18 || minutes > 59 {
        return Err(bad());
    }
    let offset = FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60)).ok_or_else(bad)?;
    Ok((head, Some(offset)))
}

/// A `time`: a local time with an offset (`Z`, `+01:00`).
pub fn time(s: &str) -> Result<Cell, String> {
    let t = s.trim();
    let (head, offset) = split_offset(t)?;
    let utc = FixedOffset::east_opt(0).ok_or("no UTC offset")?;
    Ok(Cell::Time(naive_time(head)?, offset.unwrap_or(utc)))
}

fn naive_datetime(s: &str) -> Result<NaiveDateTime, String> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M"))
        .map_err(|e| format!("`{s}` is not a date and time (YYYY-MM-DDTHH:MM:SS[.fffffffff]): {e}"))
}

/// A `localdatetime` (`YYYY-MM-DDTHH:MM:SS[.f]`).
pub fn localdatetime(s: &str) -> Result<Cell, String> {
    naive_datetime(s.trim()).map(Cell::LocalDateTime)
}

/// A `datetime`: a local date and time with an offset or a named zone.
pub fn datetime(s: &str) -> Result<Cell, String> {
    let t = s.trim();
    if let Some(open) = t.find('[') {
        let zone = t[open + 1..]
            .strip_suffix(']')
            .ok_or_else(|| format!("`{s}`: missing `]` after the time zone name"))?;
        let tz: Tz = zone.parse().map_err(|_| {
            format!("`{s}`: `{zone}` is not a known time zone name (IANA, e.g. Europe/Berlin)")
        })?;
        let (head, offset) = split_offset(&t[..open])?;
        let local = naive_datetime(head)?;
        let resolved = tz.from_local_datetime(&local).single().ok_or_else(|| {
            format!("`{s}`: the local time does not exist or is ambiguous in {zone}")
        })?;
        if let Some(offset) = offset {
            if resolved.offset().fix() != offset {
                return Err(format!(
                    "`{s}`: offset {offset} is not the offset of {zone} at that time"
                ));
            }
        }
        return Ok(Cell::ZonedDateTime(local, tz));
    }
    let (head, offset) = split_offset(t)?;
    let local = naive_datetime(head)?;
    let offset = match offset {
        Some(o) => o,
        None => FixedOffset::east_opt(0).ok_or("no UTC offset")?,
    };
    let dt: DateTime<FixedOffset> = offset
        .from_local_datetime(&local)
        .single()
        .ok_or_else(|| format!("`{s}` is out of range"))?;
    Ok(Cell::DateTime(dt))
}

use chrono::Offset as _;

/// ISO 8601 durations as Neo4j writes them: `P[nY][nM][nW][nD][T[nH][nM][n[.f]S]]`,
/// optionally negative (`-P1D`). Years are 12 months, weeks 7 days, hours
/// and minutes are seconds; months, days and seconds stay apart (as in Neo4j).
pub fn duration(s: &str) -> Result<Cell, String> {
    let t = s.trim();
    let bad =
        |why: &str| format!("`{s}` is not an ISO 8601 duration (e.g. P1Y2M3DT4H5M6.5S): {why}");
    let (negative, rest) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t),
    };
    let rest = rest
        .strip_prefix('P')
        .or_else(|| rest.strip_prefix('p'))
        .ok_or_else(|| bad("it must start with P"))?;
    if rest.is_empty() || rest.eq_ignore_ascii_case("T") {
        return Err(bad("no components"));
    }
    let (mut months, mut days, mut seconds, mut nanos) = (0i64, 0i64, 0i64, 0i64);
    let mut in_time = false;
    let mut number = String::new();
    let overflow = || bad("a component is too large");
    for c in rest.chars() {
        match c.to_ascii_uppercase() {
            'T' if !in_time && number.is_empty() => in_time = true,
            d if d.is_ascii_digit() || d == '.' => number.push(d),
            unit => {
                if number.is_empty() {
                    return Err(bad(&format!("no number before `{c}`")));
                }
                let (whole, frac) = match number.split_once('.') {
                    Some((w, f)) => (w, Some(f)),
                    None => (number.as_str(), None),
                };
                let whole: i64 = whole.parse().map_err(|_| bad("bad number"))?;
                if frac.is_some() && !(in_time && unit == 'S') {
                    return Err(bad("only seconds may have a fraction"));
                }
                match (in_time, unit) {
                    (false, 'Y') => {
                        months = whole
                            .checked_mul(12)
                            .and_then(|m| months.checked_add(m))
                            .ok_or_else(overflow)?
                    }
                    (false, 'M') => months = months.checked_add(whole).ok_or_else(overflow)?,
                    (false, 'W') => {
                        days = whole
                            .checked_mul(7)
                            .and_then(|d| days.checked_add(d))
                            .ok_or_else(overflow)?
                    }
                    (false, 'D') => days = days.checked_add(whole).ok_or_else(overflow)?,
                    (true, 'H') => {
                        seconds = whole
                            .checked_mul(3600)
                            .and_then(|x| seconds.checked_add(x))
                            .ok_or_else(overflow)?
                    }
                    (true, 'M') => {
                        seconds = whole
                            .checked_mul(60)
                            .and_then(|x| seconds.checked_add(x))
                            .ok_or_else(overflow)?
                    }
                    (true, 'S') => {
                        seconds = seconds.checked_add(whole).ok_or_else(overflow)?;
                        if let Some(f) = frac {
                            if f.is_empty() || f.len() > 9 || !f.chars().all(|c| c.is_ascii_digit())
                            {
                                return Err(bad("at most 9 digits after the point"));
                            }
                            nanos = format!("{f:0<9}")
                                .parse()
                                .map_err(|_| bad("bad fraction"))?;
                        }
                    }
                    _ => return Err(bad(&format!("unknown unit `{c}`"))),
                }
                number.clear();
            }
        }
    }
    if !number.is_empty() {
        return Err(bad("a number without a unit at the end"));
    }
    let sign = if negative { -1 } else { 1 };
    Ok(Cell::Duration(Duration::normalized(
        sign * months,
        sign * days,
        sign * seconds,
        sign * nanos,
    )))
}

/// A point map, `{key: value, …}`: keys `x`, `y`, `z`, `latitude`,
/// `longitude`, `height`, `crs`, `srid`; values numbers (`crs` a name,
/// quoted or not). The coordinate reference system follows Neo4j:
/// WGS-84 (4326) / WGS-84-3D (4979) for latitude/longitude[/height],
/// cartesian (7203) / cartesian-3D (9157) for x/y[/z].
pub fn point(s: &str) -> Result<Cell, String> {
    let t = s.trim();
    let bad = |why: String| {
        format!("`{s}` is not a point (e.g. {{latitude: 13.1, longitude: 56.2}} or {{x: 1, y: 2}}): {why}")
    };
    let body = t
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or_else(|| bad("it must be a map in braces".into()))?;
    let (mut x, mut y, mut z, mut lat, mut lon, mut height) = (None, None, None, None, None, None);
    let mut crs: Option<String> = None;
    let mut srid: Option<i64> = None;
    for pair in body.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once(':')
            .ok_or_else(|| bad(format!("`{pair}` is not `key: value`")))?;
        let key = k.trim().trim_matches(['\'', '"']).to_ascii_lowercase();
        let v = v.trim().trim_matches(['\'', '"']);
        let num = || -> Result<f64, String> {
            let f: f64 = v
                .parse()
                .map_err(|_| bad(format!("`{v}` is not a number")))?;
            if f.is_finite() {
                Ok(f)
            } else {
                Err(bad(format!("`{v}` is not finite")))
            }
        };
        let slot = match key.as_str() {
            "x" => &mut x,
            "y" => &mut y,
            "z" => &mut z,
            "latitude" => &mut lat,
            "longitude" => &mut lon,
            "height" => &mut height,
            "crs" => {
                crs = Some(v.to_ascii_lowercase());
                continue;
            }
            "srid" => {
                srid = Some(
                    v.parse()
                        .map_err(|_| bad(format!("srid `{v}` is not an integer")))?,
                );
                continue;
            }
            other => return Err(bad(format!("unknown key `{other}`"))),
        };
        if slot.replace(num()?).is_some() {
            return Err(bad(format!("`{key}` given twice")));
        }
    }
    let geographic = lat.is_some() || lon.is_some() || height.is_some();
    let cartesian = x.is_some() || y.is_some() || z.is_some();
    let p = match (geographic, cartesian) {
        (true, true) => return Err(bad("mixes x/y/z with latitude/longitude/height".into())),
        (true, false) => {
            let (Some(lat), Some(lon)) = (lat, lon) else {
                return Err(bad("needs both latitude and longitude".into()));
            };
            if !(-90.0..=90.0).contains(&lat) {
                return Err(bad(format!("latitude {lat} is outside -90..90")));
            }
            Point {
                srid: if height.is_some() { 4979 } else { 4326 },
                x: lon,
                y: lat,
                z: height,
            }
        }
        (false, true) => {
            let (Some(x), Some(y)) = (x, y) else {
                return Err(bad("needs both x and y".into()));
            };
            Point {
                srid: if z.is_some() { 9157 } else { 7203 },
                x,
                y,
                z,
            }
        }
        (false, false) => return Err(bad("no coordinates".into())),
    };
    let named = match crs.as_deref() {
        None => None,
        Some("wgs-84") => Some(4326),
        Some("wgs-84-3d") => Some(4979),
        Some("cartesian") => Some(7203),
        Some("cartesian-3d") => Some(9157),
        Some(other) => return Err(bad(format!("unknown crs `{other}`"))),
    };
    for want in [named, srid].into_iter().flatten() {
        if want != i64::from(p.srid) {
            return Err(bad(format!(
                "crs/srid {want} does not match the coordinates given (srid {})",
                p.srid
            )));
        }
    }
    Ok(Cell::Point(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }
    fn t(h: u32, m: u32, s: u32, n: u32) -> NaiveTime {
        NaiveTime::from_hms_nano_opt(h, m, s, n).unwrap()
    }
    fn off(secs: i32) -> FixedOffset {
        FixedOffset::east_opt(secs).unwrap()
    }

    #[test]
    fn neo4j_documented_forms_parse() {
        assert_eq!(date("2015-07-04").unwrap(), Cell::Date(d(2015, 7, 4)));
        assert_eq!(
            localtime("12:50:35.556").unwrap(),
            Cell::LocalTime(t(12, 50, 35, 556_000_000))
        );
        assert_eq!(
            localtime("12:50").unwrap(),
            Cell::LocalTime(t(12, 50, 0, 0))
        );
        assert_eq!(
            time("12:50:35.556+01:00").unwrap(),
            Cell::Time(t(12, 50, 35, 556_000_000), off(3600))
        );
        assert_eq!(
            time("12:50:35Z").unwrap(),
            Cell::Time(t(12, 50, 35, 0), off(0))
        );
        assert_eq!(
            time("12:50:35-0230").unwrap(),
            Cell::Time(t(12, 50, 35, 0), off(-9000))
        );
        assert_eq!(
            time("12:50:35").unwrap(),
            Cell::Time(t(12, 50, 35, 0), off(0))
        );
        assert_eq!(
            localdatetime("2015-07-04T19:32:24.123456789").unwrap(),
            Cell::LocalDateTime(d(2015, 7, 4).and_time(t(19, 32, 24, 123_456_789)))
        );
        assert_eq!(
            datetime("2015-06-24T12:50:35.556+01:00").unwrap(),
            Cell::DateTime(
                off(3600)
                    .from_local_datetime(&d(2015, 6, 24).and_time(t(12, 50, 35, 556_000_000)))
                    .unwrap()
            )
        );
        assert_eq!(
            datetime("2015-06-24T12:50:35Z").unwrap(),
            Cell::DateTime(
                off(0)
                    .from_local_datetime(&d(2015, 6, 24).and_time(t(12, 50, 35, 0)))
                    .unwrap()
            )
        );
        assert_eq!(
            datetime("2015-07-04T19:32:24[Europe/Berlin]").unwrap(),
            Cell::ZonedDateTime(
                d(2015, 7, 4).and_time(t(19, 32, 24, 0)),
                chrono_tz::Europe::Berlin
            )
        );
        assert_eq!(
            datetime("2015-07-04T19:32:24+02:00[Europe/Berlin]").unwrap(),
            Cell::ZonedDateTime(
                d(2015, 7, 4).and_time(t(19, 32, 24, 0)),
                chrono_tz::Europe::Berlin
            )
        );
        let dur = |months, days, seconds, nanos| {
            Cell::Duration(Duration {
                months,
                days,
                seconds,
                nanos,
            })
        };
        assert_eq!(
            duration("P14DT16H12M").unwrap(),
            dur(0, 14, 16 * 3600 + 720, 0)
        );
        assert_eq!(
            duration("P1Y2M3W4DT5H6M7.5S").unwrap(),
            dur(14, 25, 5 * 3600 + 367, 500_000_000)
        );
        assert_eq!(duration("PT0.000000001S").unwrap(), dur(0, 0, 0, 1));
        assert_eq!(duration("-P1D").unwrap(), dur(0, -1, 0, 0));
        // Nanoseconds are kept in 0..1e9, as Neo4j does: -1.5 s is -2 s + 0.5 s.
        assert_eq!(duration("-PT1.5S").unwrap(), dur(0, 0, -2, 500_000_000));
        assert_eq!(
            point("{latitude: 13.1, longitude: 56.2}").unwrap(),
            Cell::Point(Point {
                srid: 4326,
                x: 56.2,
                y: 13.1,
                z: None
            })
        );
        assert_eq!(
            point("{crs:'WGS-84-3D', latitude:1, longitude:2, height:3}").unwrap(),
            Cell::Point(Point {
                srid: 4979,
                x: 2.0,
                y: 1.0,
                z: Some(3.0)
            })
        );
        assert_eq!(
            point("{x:1, y:2}").unwrap(),
            Cell::Point(Point {
                srid: 7203,
                x: 1.0,
                y: 2.0,
                z: None
            })
        );
        assert_eq!(
            point("{x:1, y:2, z:3, crs:cartesian-3d}").unwrap(),
            Cell::Point(Point {
                srid: 9157,
                x: 1.0,
                y: 2.0,
                z: Some(3.0)
            })
        );
    }

    #[test]
    fn malformed_values_are_refused_with_the_value() {
        type Parse = fn(&str) -> Result<Cell, String>;
        let cases: [(Parse, &str, &str); 17] = [
            (date, "2015-02-30", "not a date"),
            (date, "04/07/2015", "not a date"),
            (localtime, "25:00:00", "not a time"),
            (time, "12:00:00+25:00", "not a time zone offset"),
            (localdatetime, "2015-07-04 19:32", "not a date and time"),
            (
                datetime,
                "2015-07-04T19:32:24[Mars/Olympus]",
                "not a known time zone",
            ),
            (
                datetime,
                "2015-07-04T19:32:24+05:00[Europe/Berlin]",
                "is not the offset",
            ),
            (
                datetime,
                "2015-03-29T02:30:00[Europe/Berlin]",
                "does not exist or is ambiguous",
            ),
            (duration, "14 days", "must start with P"),
            (duration, "P1.5D", "only seconds may have a fraction"),
            (duration, "P", "no components"),
            (duration, "PT1X", "unknown unit"),
            (point, "13.1,56.2", "map in braces"),
            (point, "{latitude: 91, longitude: 0}", "outside -90..90"),
            (point, "{x: 1}", "needs both x and y"),
            (point, "{x: 1, y: 2, crs: wgs-84}", "does not match"),
            (point, "{x: 1, y: NaN}", "not finite"),
        ];
        for (parse, input, want) in cases {
            let err = parse(input).unwrap_err();
            assert!(err.contains(want) && err.contains(input), "{input}: {err}");
        }
    }
}
