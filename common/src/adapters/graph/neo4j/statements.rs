//! Every Cypher statement of the Neo4j admin path, as pure functions and
//! constants. No Neo4j server runs in CI: these are pinned by the unit tests
//! below, hostile names included. Names are backtick-quoted by
//! [`quote`](super::super::quote); values are parameters.

use super::super::quote;

/// Edition and version (`system`).
pub const COMPONENTS: &str =
    "CALL dbms.components() YIELD name, versions, edition RETURN name, versions, edition";
/// Every database, aliases excluded (`system`).
pub const LIST_DATABASES: &str = "SHOW DATABASES YIELD name RETURN DISTINCT name";
/// The target of alias `$alias` (`system`).
pub const ALIAS_TARGET: &str =
    "SHOW ALIASES FOR DATABASE YIELD name, database WHERE name = $alias RETURN database";
/// The server's database limit, Neo4j 5 (`system`).
pub const MAX_DATABASES: &str =
    "SHOW SETTINGS YIELD name, value WHERE name = 'dbms.max_databases' RETURN value";
/// The same on Neo4j 4.4, which has no SHOW SETTINGS.
pub const MAX_DATABASES_4: &str =
    "CALL dbms.listConfig('dbms.max_databases') YIELD value RETURN value";
/// JVM heap in bytes.
pub const HEAP: &str = "CALL dbms.queryJmx('java.lang:type=Memory') YIELD attributes \
     RETURN attributes.HeapMemoryUsage.value.properties.used AS used, \
     attributes.HeapMemoryUsage.value.properties.max AS max";
/// Page-cache usage ratio (0-1), from the metrics Neo4j 5 publishes over JMX
/// (`server.metrics.jmx.enabled`, on by default).
pub const PAGECACHE: &str =
    "CALL dbms.queryJmx('neo4j.metrics:name=neo4j.dbms.page_cache.usage_ratio') \
     YIELD attributes RETURN attributes.Value.value AS ratio";

/// Its own transaction; waits until the database is online.
pub fn create_database(db: &str) -> String {
    format!("CREATE DATABASE {} IF NOT EXISTS WAIT", quote(db))
}

/// Only after no alias targets it (the adapter checks).
pub fn drop_database(db: &str) -> String {
    format!("DROP DATABASE {} IF EXISTS WAIT", quote(db))
}

/// Points `alias` at `db`.
pub fn switch_alias(alias: &str, db: &str) -> String {
    format!(
        "CREATE OR REPLACE ALIAS {} FOR DATABASE {}",
        quote(alias),
        quote(db)
    )
}

/// Removes `alias`.
pub fn drop_alias(alias: &str) -> String {
    format!("DROP ALIAS {} IF EXISTS FOR DATABASE", quote(alias))
}

/// Load path: the index relationship endpoints are matched by.
pub fn create_index(label: &str, property: &str) -> String {
    format!(
        "CREATE INDEX IF NOT EXISTS FOR (n:{}) ON (n.{})",
        quote(label),
        quote(property)
    )
}

/// Load path: Neo4j builds indexes in the background; wait for them.
pub const AWAIT_INDEXES: &str = "CALL db.awaitIndexes(300)";

/// Census (the guards, "what changed"): the labels and relationship types
/// in use; each is then counted on its own.
pub const LABELS: &str = "CALL db.labels() YIELD label RETURN label";
/// The relationship types in use.
pub const TYPES: &str =
    "CALL db.relationshipTypes() YIELD relationshipType RETURN relationshipType AS type";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_statements_are_pinned() {
        assert_eq!(
            create_database("acme-1767741427"),
            "CREATE DATABASE `acme-1767741427` IF NOT EXISTS WAIT"
        );
        assert_eq!(
            drop_database("acme-1767741427"),
            "DROP DATABASE `acme-1767741427` IF EXISTS WAIT"
        );
        assert_eq!(
            switch_alias("acme", "acme-1767741427"),
            "CREATE OR REPLACE ALIAS `acme` FOR DATABASE `acme-1767741427`"
        );
        assert_eq!(
            create_index("Person", "personId"),
            "CREATE INDEX IF NOT EXISTS FOR (n:`Person`) ON (n.`personId`)"
        );
        assert!(
            ALIAS_TARGET.contains("$alias"),
            "the alias is a parameter, never text"
        );
    }

    #[test]
    fn hostile_names_stay_inside_their_backticks() {
        assert_eq!(
            drop_database("x` IF EXISTS; DROP DATABASE `neo4j"),
            "DROP DATABASE `x`` IF EXISTS; DROP DATABASE ``neo4j` IF EXISTS WAIT"
        );
        assert_eq!(
            drop_alias("a`b"),
            "DROP ALIAS `a``b` IF EXISTS FOR DATABASE"
        );
        assert_eq!(
            switch_alias("a`b", "c`d"),
            "CREATE OR REPLACE ALIAS `a``b` FOR DATABASE `c``d`"
        );
        assert_eq!(
            create_index("L`) DETACH DELETE n //", "p{}"),
            "CREATE INDEX IF NOT EXISTS FOR (n:`L``) DETACH DELETE n //`) ON (n.`p{}`)"
        );
    }
}
