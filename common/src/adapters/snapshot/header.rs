//! neo4j-admin import headers: `personId:ID(Person)`, `:LABEL`, `name`,
//! `age:int`, `:START_ID(Person)`, `:END_ID(Person)`, `:TYPE`, `:IGNORE`.
//! The same column names are used in CSV headers and as Parquet/Arrow field
//! names. Parsing is pure: a list of column names in, a spec or a message that
//! names the offending column out.

use std::collections::HashMap;

/// Property types snapswitch stores. neo4j-admin's `long`, `int`, `short` and
/// `byte` are all stored as 64-bit integers, but a value outside the declared
/// type's range is refused; `float` and `double` are 64-bit floats.
/// The temporal types and `point` are neo4j-admin's (see `temporal.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropType {
    /// `long`: 64-bit.
    Int,
    /// `int`: 32-bit range.
    Int32,
    /// `short`: 16-bit range.
    Short,
    /// `byte`: 8-bit range.
    Byte,
    /// `float`, `double`: 64-bit floating point.
    Float,
    /// `boolean`: `true` or `false`.
    Bool,
    /// `string`, `char`: text (an undeclared column is text too).
    String,
    /// `date`: a calendar date.
    Date,
    /// `localtime`: a time of day without a zone.
    LocalTime,
    /// `time`: a time of day with an offset.
    Time,
    /// `localdatetime`: a date and time without a zone.
    LocalDateTime,
    /// `datetime`: a date and time with an offset or a named zone.
    DateTime,
    /// `duration`: months, days and seconds.
    Duration,
    /// `point`: a 2D or 3D point, cartesian or WGS-84.
    Point,
}

impl PropType {
    /// The integer types, with the range of values they accept.
    pub fn int_range(self) -> Option<(i64, i64)> {
        match self {
            PropType::Int => Some((i64::MIN, i64::MAX)),
            PropType::Int32 => Some((i32::MIN.into(), i32::MAX.into())),
            PropType::Short => Some((i16::MIN.into(), i16::MAX.into())),
            PropType::Byte => Some((i8::MIN.into(), i8::MAX.into())),
            _ => None,
        }
    }

    fn parse(t: &str) -> Option<PropType> {
        Some(match t.to_ascii_lowercase().as_str() {
            "long" => PropType::Int,
            "int" => PropType::Int32,
            "short" => PropType::Short,
            "byte" => PropType::Byte,
            "float" | "double" => PropType::Float,
            "boolean" => PropType::Bool,
            "string" | "char" => PropType::String,
            "date" => PropType::Date,
            "localtime" => PropType::LocalTime,
            "time" => PropType::Time,
            "localdatetime" => PropType::LocalDateTime,
            "datetime" => PropType::DateTime,
            "duration" => PropType::Duration,
            "point" => PropType::Point,
            _ => return None,
        })
    }

    /// The header's name of the type (neo4j-admin's; `float` for both
    /// `float` and `double`).
    pub fn name(self) -> &'static str {
        match self {
            PropType::Int => "long",
            PropType::Int32 => "int",
            PropType::Short => "short",
            PropType::Byte => "byte",
            PropType::Float => "float",
            PropType::Bool => "boolean",
            PropType::String => "string",
            PropType::Date => "date",
            PropType::LocalTime => "localtime",
            PropType::Time => "time",
            PropType::LocalDateTime => "localdatetime",
            PropType::DateTime => "datetime",
            PropType::Duration => "duration",
            PropType::Point => "point",
        }
    }
}

/// The ID space of `:ID`, `:START_ID` and `:END_ID` columns that name none
/// (neo4j-admin's global ID space). Like every ID space it is a name in the
/// loader's id map, not a label: a node gets it as its label only when it has
/// no label at all (no `:LABEL` value, no group directory).
pub const GLOBAL_ID_SPACE: &str = "__global__";

/// What one column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    /// The node id, in an ID space; stored as the property `property`.
    Id {
        /// The ID space (`__global__` when the header names none).
        space: String,
        /// The property the id is stored as.
        property: String,
    },
    /// `:LABEL`: the node's labels.
    Label,
    /// `:START_ID`: the start node's id.
    StartId {
        /// The start node's ID space.
        space: String,
    },
    /// `:END_ID`: the end node's id.
    EndId {
        /// The end node's ID space.
        space: String,
    },
    /// `:TYPE`: the relationship's type.
    Type,
    /// A property.
    Property {
        /// The property's name.
        name: String,
        /// Its declared type (`None`: string).
        ty: Option<PropType>,
        /// `type[]`: an array, split at the array delimiter in CSV.
        array: bool,
    },
    /// `:IGNORE`: a column not loaded.
    Ignore,
}

/// Longest label, type or property name accepted.
pub const MAX_NAME_LEN: usize = 256;

/// Checks a label, relationship type or property name that will be written into
/// Cypher between backticks: no backtick, no control character, not empty, not
/// huge. Values never go into statement text; names must.
pub fn check_name(kind: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{kind} name is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("{kind} name is longer than {MAX_NAME_LEN} bytes"));
    }
    if let Some(c) = name.chars().find(|c| *c == '`' || c.is_control()) {
        return Err(format!("{kind} name {name:?} contains the character {c:?}, which snapswitch does not allow in names"));
    }
    Ok(())
}

/// Parses one column name.
pub fn parse_column(column: &str) -> Result<Column, String> {
    // `name:type{options}`; a name such as `{weird}` (no `:` before the brace) is just a name.
    let braced = column.ends_with('}')
        && column
            .rfind('{')
            .is_some_and(|open| column[..open].contains(':'));
    if braced {
        return Err(format!(
            "column `{column}`: type options in braces (`{{…}}`) are not supported; use the options file of the snapshot (docs/snapshot-format.md)"
        ));
    }
    let (name, ty) = match column.rsplit_once(':') {
        // `a:b(c:d)` — the colon inside the parentheses is not a separator.
        Some((n, t)) if !t.contains(')') || t.contains('(') => (n, Some(t)),
        Some(_) | None => (column, None),
    };
    let Some(ty) = ty else {
        check_name("property", name)?;
        return Ok(Column::Property {
            name: name.to_owned(),
            ty: None,
            array: false,
        });
    };
    let (kind, space) = match ty.split_once('(') {
        Some((k, rest)) => {
            let space = rest
                .strip_suffix(')')
                .ok_or_else(|| format!("column `{column}`: missing `)` after the ID space"))?;
            (k, Some(space))
        }
        None => (ty, None),
    };
    // No ID space (or `()`): neo4j-admin's global ID space.
    let needs_space = |_what: &str| -> Result<String, String> {
        match space {
            Some(s) if !s.is_empty() => {
                check_name("ID space", s)?;
                Ok(s.to_owned())
            }
            _ => Ok(GLOBAL_ID_SPACE.to_owned()),
        }
    };
    let column = match kind.to_ascii_uppercase().as_str() {
        "ID" => {
            let property = if name.is_empty() { "id" } else { name };
            check_name("property", property)?;
            Column::Id {
                space: needs_space("ID")?,
                property: property.to_owned(),
            }
        }
        "START_ID" => Column::StartId {
            space: needs_space("START_ID")?,
        },
        "END_ID" => Column::EndId {
            space: needs_space("END_ID")?,
        },
        "LABEL" => Column::Label,
        "TYPE" => Column::Type,
        "IGNORE" => Column::Ignore,
        _ => {
            if space.is_some() {
                return Err(format!(
                    "column `{column}`: only ID, START_ID and END_ID take an ID space"
                ));
            }
            let (other, array) = match kind.strip_suffix("[]") {
                Some(element) => (element, true),
                None => (kind, false),
            };
            let ty = PropType::parse(other).ok_or_else(|| {
                format!(
                    "column `{column}`: type `{other}` is not supported; use int, long, short, byte, float, double, boolean, string, char, date, localtime, time, localdatetime, datetime, duration or point, or an array of one of them (`int[]`)"
                )
            })?;
            check_name("property", name)?;
            Column::Property {
                name: name.to_owned(),
                ty: Some(ty),
                array,
            }
        }
    };
    Ok(column)
}

/// A property column: its index, name and declared type (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropColumn {
    /// The column's position in the file.
    pub index: usize,
    /// The property's name.
    pub name: String,
    /// Its declared type (`None`: string).
    pub ty: Option<PropType>,
    /// `type[]`.
    pub array: bool,
}

/// How to read a node file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// The position of the `:ID` column.
    pub id_index: usize,
    /// The ID space of the file's ids.
    pub id_space: String,
    /// The property the id is stored as.
    pub id_property: String,
    /// The position of the `:LABEL` column, if any.
    pub label_index: Option<usize>,
    /// Labels every node of the file carries, from how the file is named
    /// (neo4j-admin's `--nodes=Label=file`; see `layout::Input`).
    pub labels: Vec<String>,
    /// Properties other than the id.
    pub properties: Vec<PropColumn>,
    /// Every column, in file order.
    pub columns: Vec<Column>,
}

/// How to read a relationship file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelSpec {
    /// The position of the `:START_ID` column.
    pub start_index: usize,
    /// The start nodes' ID space.
    pub start_space: String,
    /// The position of the `:END_ID` column.
    pub end_index: usize,
    /// The end nodes' ID space.
    pub end_space: String,
    /// The `:TYPE` column; `None` when the type comes from how the file is
    /// named ([`RelSpec::fixed_type`]).
    pub type_index: Option<usize>,
    /// The type of every relationship of a file without `:TYPE` (neo4j-admin's
    /// `--relationships=TYPE=file`).
    pub fixed_type: Option<String>,
    /// The property columns.
    pub properties: Vec<PropColumn>,
    /// Every column, in file order.
    pub columns: Vec<Column>,
}

/// A UTF-8 byte-order mark, which some tools write before the first column.
const BOM: char = '\u{feff}';

/// Other characters a header may have been written with.
const OTHER_DELIMITERS: [(char, &str); 3] = [(';', "`;`"), ('\t', "a tab"), ('|', "`|`")];

/// Refuses a header that does not split into its columns: a column name that,
/// split at another common delimiter, holds a neo4j-admin column (`:ID`,
/// `:LABEL`, a typed property, …). `name;age;personId:ID(Person)` read with
/// `,` is one column; loading it would store one property named
/// `name;age;personId` on every node.
pub fn check_split(names: &[String]) -> Result<(), String> {
    for name in names {
        let name = name.trim_start_matches(BOM);
        for (c, shown) in OTHER_DELIMITERS {
            if !name.contains(c) {
                continue;
            }
            let keyword = name.split(c).any(|part| {
                matches!(
                    parse_column(part.trim()),
                    Ok(Column::Id { .. }
                        | Column::Label
                        | Column::StartId { .. }
                        | Column::EndId { .. }
                        | Column::Type
                        | Column::Ignore
                        | Column::Property { ty: Some(_), .. })
                )
            });
            if keyword {
                return Err(format!(
                    "header column `{name}` looks delimited by {shown}, not by the file's delimiter `,`: the header does not split into known columns; write the file with `,` (or fix the header)"
                ));
            }
        }
    }
    Ok(())
}

fn parse_all(names: &[String]) -> Result<Vec<Column>, String> {
    check_split(names)?;
    let columns = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            // The BOM is not part of the first column's name.
            let n = if i == 0 { n.trim_start_matches(BOM) } else { n };
            parse_column(n)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = HashMap::new();
    for (i, c) in columns.iter().enumerate() {
        let key = match c {
            Column::Property { name, .. } | Column::Id { property: name, .. } => name.clone(),
            Column::Ignore => continue,
            Column::Label => ":LABEL".into(),
            Column::StartId { .. } => ":START_ID".into(),
            Column::EndId { .. } => ":END_ID".into(),
            Column::Type => ":TYPE".into(),
        };
        if let Some(j) = seen.insert(key, i) {
            return Err(format!(
                "columns `{}` and `{}` name the same field",
                names[j], names[i]
            ));
        }
    }
    Ok(columns)
}

fn properties(columns: &[Column]) -> Vec<PropColumn> {
    columns
        .iter()
        .enumerate()
        .filter_map(|(index, c)| match c {
            Column::Property { name, ty, array } => Some(PropColumn {
                index,
                name: name.clone(),
                ty: *ty,
                array: *array,
            }),
            _ => None,
        })
        .collect()
}

impl NodeSpec {
    /// Reads a node file's header from its column names.
    pub fn parse(names: &[String]) -> Result<NodeSpec, String> {
        let columns = parse_all(names)?;
        let mut id = None;
        let mut label_index = None;
        for (i, c) in columns.iter().enumerate() {
            match c {
                Column::Id { space, property } if id.is_none() => id = Some((i, space.clone(), property.clone())),
                Column::Id { .. } => return Err("node file has more than one :ID column".into()),
                Column::Label => label_index = Some(i),
                Column::StartId { .. } | Column::EndId { .. } | Column::Type => {
                    return Err("node file has relationship columns (:START_ID, :END_ID or :TYPE); put it under relationships/".into())
                }
                _ => {}
            }
        }
        let (id_index, id_space, id_property) =
            id.ok_or("node file has no :ID column (e.g. `personId:ID(Person)`)")?;
        Ok(NodeSpec {
            id_index,
            id_space,
            id_property,
            label_index,
            labels: Vec::new(),
            properties: properties(&columns),
            columns,
        })
    }

    /// [`NodeSpec::parse`] for a file whose naming gives every node `labels`.
    pub fn parse_named(names: &[String], labels: &[String]) -> Result<NodeSpec, String> {
        let mut spec = NodeSpec::parse(names)?;
        for label in labels {
            check_name("label", label)?;
        }
        spec.labels = labels.to_vec();
        Ok(spec)
    }
}

impl RelSpec {
    /// Reads a relationship file's header from its column names.
    pub fn parse(names: &[String]) -> Result<RelSpec, String> {
        RelSpec::parse_named(names, None)
    }

    /// [`RelSpec::parse`] for a file whose naming may give the type: then
    /// the file has no `:TYPE` column (a file with both is refused, so the
    /// type is never ambiguous).
    pub fn parse_named(names: &[String], named_type: Option<&str>) -> Result<RelSpec, String> {
        let columns = parse_all(names)?;
        let (mut start, mut end, mut ty) = (None, None, None);
        for (i, c) in columns.iter().enumerate() {
            match c {
                Column::StartId { space } => start = Some((i, space.clone())),
                Column::EndId { space } => end = Some((i, space.clone())),
                Column::Type => ty = Some(i),
                Column::Id { .. } | Column::Label => {
                    return Err(
                        "relationship file has node columns (:ID or :LABEL); put it under nodes/"
                            .into(),
                    )
                }
                _ => {}
            }
        }
        let (start_index, start_space) =
            start.ok_or("relationship file has no :START_ID column")?;
        let (end_index, end_space) = end.ok_or("relationship file has no :END_ID column")?;
        let fixed_type = match (ty, named_type) {
            (Some(_), Some(named)) => {
                return Err(format!(
                    "relationship file has a :TYPE column and its directory names the type `{named}`; use one or the other"
                ))
            }
            (None, None) => return Err("relationship file has no :TYPE column (or put it in a directory named after the type, e.g. relationships/KNOWS/)".into()),
            (_, named) => named.map(str::to_owned),
        };
        if let Some(t) = &fixed_type {
            check_name("relationship type", t)?;
        }
        Ok(RelSpec {
            start_index,
            start_space,
            end_index,
            end_space,
            type_index: ty,
            fixed_type,
            properties: properties(&columns),
            columns,
        })
    }
}

/// `name` in backticks. Callers pass only names that passed
/// [`crate::adapters::snapshot::header::check_name`] or [`crate::contract::ident`] validation, so a
/// backtick can never occur; it is still doubled (Cypher's escape) as a second
/// line of defence.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn neo4j_admin_node_header() {
        let spec = NodeSpec::parse(&names(&[
            "personId:ID(Person)",
            ":LABEL",
            "name",
            "age:int",
            "score:double",
            "x:IGNORE",
        ]))
        .unwrap();
        assert_eq!(
            (
                spec.id_index,
                spec.id_space.as_str(),
                spec.id_property.as_str()
            ),
            (0, "Person", "personId")
        );
        assert_eq!(spec.label_index, Some(1));
        let props: Vec<_> = spec
            .properties
            .iter()
            .map(|p| (p.name.as_str(), p.ty))
            .collect();
        assert_eq!(
            props,
            [
                ("name", None),
                ("age", Some(PropType::Int32)),
                ("score", Some(PropType::Float))
            ]
        );
    }

    #[test]
    fn id_columns_without_a_space_are_the_global_space() {
        let spec = NodeSpec::parse(&names(&["id:ID", "name"])).unwrap();
        assert_eq!(spec.id_space, GLOBAL_ID_SPACE);
        let rel = RelSpec::parse(&names(&[":START_ID", ":END_ID()", ":TYPE"])).unwrap();
        assert_eq!(
            (rel.start_space.as_str(), rel.end_space.as_str()),
            (GLOBAL_ID_SPACE, GLOBAL_ID_SPACE)
        );
    }

    #[test]
    fn arrays_temporal_types_and_points_are_declared_types() {
        let spec = NodeSpec::parse(&names(&[
            "id:ID(P)",
            "tags:string[]",
            "born:date",
            "at:DateTime",
            "loc:point",
            "days:date[]",
        ]))
        .unwrap();
        let props: Vec<_> = spec.properties.iter().map(|p| (p.ty, p.array)).collect();
        assert_eq!(
            props,
            [
                (Some(PropType::String), true),
                (Some(PropType::Date), false),
                (Some(PropType::DateTime), false),
                (Some(PropType::Point), false),
                (Some(PropType::Date), true),
            ]
        );
    }

    #[test]
    fn a_type_from_naming_replaces_the_type_column_never_joins_it() {
        let cols = names(&[":START_ID(P)", ":END_ID(P)", "since:int"]);
        let spec = RelSpec::parse_named(&cols, Some("KNOWS")).unwrap();
        assert_eq!(
            (spec.type_index, spec.fixed_type.as_deref()),
            (None, Some("KNOWS"))
        );
        let with_type = names(&[":START_ID(P)", ":END_ID(P)", ":TYPE"]);
        let err = RelSpec::parse_named(&with_type, Some("KNOWS")).unwrap_err();
        assert!(err.contains("use one or the other"), "{err}");
        let err = RelSpec::parse_named(&cols, Some("A`B")).unwrap_err();
        assert!(err.contains("'`'"), "{err}");
        let spec =
            NodeSpec::parse_named(&names(&["id:ID(P)"]), &["Person".into(), "Employee".into()])
                .unwrap();
        assert_eq!(spec.labels, ["Person", "Employee"]);
    }

    #[test]
    fn unnamed_id_is_stored_as_id() {
        let spec = NodeSpec::parse(&names(&[":ID(Person)", "name"])).unwrap();
        assert_eq!(spec.id_property, "id");
    }

    #[test]
    fn neo4j_admin_relationship_header() {
        let spec = RelSpec::parse(&names(&[
            ":START_ID(Person)",
            ":END_ID(Company)",
            ":TYPE",
            "since:int",
        ]))
        .unwrap();
        assert_eq!(
            (
                spec.start_space.as_str(),
                spec.end_space.as_str(),
                spec.type_index
            ),
            ("Person", "Company", Some(2))
        );
        assert_eq!(spec.properties.len(), 1);
    }

    #[test]
    fn header_errors_name_the_column_and_the_fix() {
        let cases = [
            (
                vec!["id:ID(Person)", "born:instant"],
                "type `instant` is not supported",
            ),
            (
                vec!["id:ID(Person)", "at:datetime{timezone:Europe/Berlin}"],
                "type options in braces",
            ),
            (vec!["id:ID(Person)", "a`b"], "contains the character '`'"),
            (
                vec!["id:ID(Person)", "name", "name:string"],
                "name the same field",
            ),
            (vec!["name"], "no :ID column"),
            (
                vec!["id:ID(Person)", ":TYPE"],
                "put it under relationships/",
            ),
            (vec!["id:ID(Person", "x"], "missing `)`"),
            (
                vec!["id:ID(Person)", ":LABEL", "x:LABEL"],
                "name the same field",
            ),
        ];
        for (cols, want) in cases {
            let err = NodeSpec::parse(&names(&cols)).unwrap_err();
            assert!(err.contains(want), "{cols:?}: {err}");
        }
        let err = RelSpec::parse(&names(&[":START_ID(P)", ":END_ID(P)"])).unwrap_err();
        assert!(err.contains("no :TYPE"), "{err}");
        let err = RelSpec::parse(&names(&[
            ":START_ID(P)",
            ":START_ID(Q)",
            ":END_ID(P)",
            ":TYPE",
        ]))
        .unwrap_err();
        assert!(err.contains("name the same field"), "{err}");
    }

    #[test]
    fn a_header_in_another_delimiter_is_refused() {
        for (cols, shown) in [
            (vec!["name;age;personId:ID(Person)"], "`;`"),
            (vec!["personId:ID(Person)\tname"], "a tab"),
            (vec![":START_ID(P)|:END_ID(P)|:TYPE"], "`|`"),
            (vec!["id:ID(P)", "a;b:int"], "`;`"),
        ] {
            let err = NodeSpec::parse(&names(&cols))
                .and(Ok(()))
                .and_then(|_| RelSpec::parse(&names(&cols)).map(|_| ()))
                .unwrap_err();
            assert!(
                err.contains(&format!("delimited by {shown}")),
                "{cols:?}: {err}"
            );
        }
        // Names that merely contain the character are fine.
        for ok in [vec!["id:ID(P)", "a;b"], vec!["id:ID(P)", "x|y", "c;d;e"]] {
            assert!(NodeSpec::parse(&names(&ok)).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn integer_types_keep_their_range() {
        let spec = NodeSpec::parse(&names(&[
            "id:ID(P)", "a:byte", "b:short", "c:int", "d:long",
        ]))
        .unwrap();
        let ranges: Vec<_> = spec
            .properties
            .iter()
            .map(|p| p.ty.and_then(PropType::int_range))
            .collect();
        assert_eq!(
            ranges,
            [
                Some((-128, 127)),
                Some((-32768, 32767)),
                Some((i64::from(i32::MIN), i64::from(i32::MAX))),
                Some((i64::MIN, i64::MAX))
            ]
        );
    }

    #[test]
    fn hostile_names_are_refused() {
        for bad in ["a`b", "x\ny", "", &"n".repeat(MAX_NAME_LEN + 1)] {
            assert!(check_name("label", bad).is_err(), "{bad:?}");
        }
        for ok in ["first name", "Zoë", "{weird}", "it's", "a\"b"] {
            assert!(parse_column(ok).is_ok(), "{ok:?}");
            assert!(check_name("label", ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn a_utf8_bom_before_the_first_column_is_not_part_of_its_name() {
        let spec = NodeSpec::parse(&names(&["\u{feff}personId:ID(Person)", "name"])).unwrap();
        assert_eq!(spec.id_property, "personId");
    }

    // Property tests in place of cargo-fuzz (see event.rs).
    mod proptests {
        use super::*;
        use proptest::prelude::*;

        /// Column names built from the pieces the parser looks for.
        fn column() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                Just(":".to_owned()),
                Just("(".to_owned()),
                Just(")".to_owned()),
                Just("`".to_owned()),
                Just("ID".to_owned()),
                Just("START_ID".to_owned()),
                Just("END_ID".to_owned()),
                Just("LABEL".to_owned()),
                Just("TYPE".to_owned()),
                Just("IGNORE".to_owned()),
                Just("int".to_owned()),
                Just("string".to_owned()),
                "[a-zA-Z ]{0,5}",
                ".{0,3}",
            ];
            prop::collection::vec(piece, 0..6).prop_map(|p| p.concat())
        }

        fn assert_names_safe(columns: &[Column]) {
            for c in columns {
                let names: Vec<&str> = match c {
                    Column::Id { space, property } => vec![space, property],
                    Column::StartId { space } | Column::EndId { space } => vec![space],
                    Column::Property { name, .. } => vec![name],
                    _ => vec![],
                };
                for n in names {
                    assert!(check_name("name", n).is_ok(), "{n:?}");
                    // Quoted, the name is one identifier: backticks only at both ends.
                    let q = quote(n);
                    assert!(q.starts_with('`') && q.ends_with('`'));
                    assert!(!q[1..q.len() - 1].contains('`'), "{q}");
                }
            }
        }

        proptest! {
            #[test]
            fn any_column_name_parses_or_is_refused(name in ".{0,300}") {
                if let Ok(c) = parse_column(&name) {
                    assert_names_safe(&[c]);
                }
            }

            #[test]
            fn structured_headers_give_safe_specs_or_messages(cols in prop::collection::vec(column(), 0..8)) {
                match NodeSpec::parse(&cols) {
                    Ok(spec) => {
                        assert_names_safe(&spec.columns);
                        prop_assert!(spec.id_index < cols.len());
                        prop_assert!(spec.properties.iter().all(|p| p.index < cols.len() && p.index != spec.id_index));
                    }
                    Err(m) => prop_assert!(!m.is_empty()),
                }
                match RelSpec::parse(&cols) {
                    Ok(spec) => {
                        assert_names_safe(&spec.columns);
                        prop_assert!(spec.start_index != spec.end_index);
                        prop_assert!(spec.type_index.is_some_and(|t| t < cols.len()));
                    }
                    Err(m) => prop_assert!(!m.is_empty()),
                }
            }
        }
    }
}
