//! Cypher statement text shared by every adapter: the UNWIND write statements
//! are the same for FalkorDB and Neo4j; only how `$rows` reaches the server
//! differs. Names are quoted with [`quote`]; values are never in the text.

use super::{quote, NodeWrite, Prop, RelWrite, Values};

/// Wraps a row expression (`r[2]`) for a column: FalkorDB builds temporal
/// values and points with functions (`date(r[2])`); Bolt passes them as is.
pub type Wrap<'a> = &'a dyn Fn(&Values, String) -> String;

fn as_is(_: &Values, e: String) -> String {
    e
}

/// `:`A`:`B`` for a label list.
pub fn label_clause(labels: &[&str]) -> String {
    labels.iter().map(|l| format!(":{}", quote(l))).collect()
}

/// `{`a`: r[2], `b`: r[3]}` for properties starting at column `offset` of a row.
fn props_map(props: &[Prop<'_>], offset: usize, wrap: Wrap<'_>) -> String {
    let fields: Vec<String> = props
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "{}: {}",
                quote(p.name),
                wrap(p.values, format!("r[{}]", i + offset))
            )
        })
        .collect();
    format!("{{{}}}", fields.join(", "))
}

/// Creates the nodes of `$rows`, each row holding the property values in
/// `props` order.
pub fn node_statement(w: &NodeWrite<'_>) -> String {
    node_statement_with(w, &as_is)
}

/// [`node_statement`] with each property expression passed through `wrap`.
pub fn node_statement_with(w: &NodeWrite<'_>, wrap: Wrap<'_>) -> String {
    format!(
        "UNWIND $rows AS r CREATE (n{} {})",
        label_clause(w.labels),
        props_map(w.props, 0, wrap)
    )
}

/// Creates the relationships of `$rows`; a row is start id, end id, then the
/// property values in `props` order.
pub fn relationship_statement(w: &RelWrite<'_>) -> String {
    relationship_statement_with(w, &as_is)
}

/// [`relationship_statement`] with each property expression passed through `wrap`.
pub fn relationship_statement_with(w: &RelWrite<'_>, wrap: Wrap<'_>) -> String {
    format!(
        "UNWIND $rows AS r MATCH (a:{} {{{}: r[0]}}) MATCH (b:{} {{{}: r[1]}}) CREATE (a)-[:{} {}]->(b)",
        quote(w.start.label),
        quote(w.start.property),
        quote(w.end.label),
        quote(w.end.property),
        quote(w.rel_type),
        props_map(w.props, 2, wrap),
    )
}

pub const COUNT_NODES: &str = "MATCH (n) RETURN count(n) AS c";
pub const COUNT_RELATIONSHIPS: &str = "MATCH ()-[r]->() RETURN count(r) AS c";

#[cfg(test)]
mod tests {
    use super::super::{Endpoint, Values};
    use super::*;

    #[test]
    fn node_statement_quotes_every_name() {
        let v = Values::Null;
        let props = [
            Prop {
                name: "first name",
                values: &v,
            },
            Prop {
                name: "a``b",
                values: &v,
            },
        ];
        let w = NodeWrite {
            labels: &["Person", "Emp loyee"],
            props: &props,
            rows: &[0],
        };
        assert_eq!(
            node_statement(&w),
            "UNWIND $rows AS r CREATE (n:`Person`:`Emp loyee` {`first name`: r[0], `a````b`: r[1]})"
        );
    }

    #[test]
    fn relationship_statement_matches_endpoints_by_id_space_label() {
        let v = Values::Null;
        let props = [Prop {
            name: "since",
            values: &v,
        }];
        let w = RelWrite {
            rel_type: "WORKS_AT",
            start: Endpoint {
                label: "Person",
                property: "personId",
                values: &v,
            },
            end: Endpoint {
                label: "Company",
                property: "companyId",
                values: &v,
            },
            props: &props,
            rows: &[0],
        };
        assert_eq!(
            relationship_statement(&w),
            "UNWIND $rows AS r MATCH (a:`Person` {`personId`: r[0]}) MATCH (b:`Company` {`companyId`: r[1]}) \
             CREATE (a)-[:`WORKS_AT` {`since`: r[2]}]->(b)"
        );
    }
}
