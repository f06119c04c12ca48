//! The load path of the FalkorDB store: indexes, node and relationship
//! batches, GRAPH.BULK calls, counts.

use super::*;

/// PINGs a write connection gets before a `GRAPH.BULK` call on it.
const BULK_CONNECTION_CHECKS: u32 = 4;

impl FalkorStore {
    /// The next write connection, checked with a PING: a `GRAPH.BULK` call
    /// is never resent (a lost reply may have been applied), so a
    /// connection that broke while idle (a server restart) must fail an
    /// idempotent PING, which makes the connection manager reconnect, and
    /// not the call. A PING that fails is retried (100, 200, 400 ms apart)
    /// before the call's error is the PING's.
    async fn checked_writer(&self) -> Result<ConnectionManager, GraphError> {
        let i = self.next_writer.fetch_add(1, AtomicOrdering::Relaxed) % self.writers.len();
        let mut con = self.writers[i].clone();
        let mut attempt = 0;
        loop {
            match redis::cmd("PING").query_async::<String>(&mut con).await {
                Ok(_) => return Ok(con),
                Err(e) if attempt + 1 >= BULK_CONNECTION_CHECKS => return Err(map_err(e)),
                Err(e) => {
                    tracing::debug!(error = %e, attempt, "write connection check failed; reconnecting");
                    tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
                    attempt += 1;
                }
            }
        }
    }
}

#[async_trait]
impl GraphWriter for FalkorStore {
    async fn create_index(&self, db: &str, label: &str, property: &str) -> Result<(), GraphError> {
        let q = format!(
            "CREATE INDEX FOR (n:{}) ON (n.{})",
            quote(label),
            quote(property)
        );
        match self.query(&self.key_of(db).await?, &q).await {
            Err(GraphError::Permanent(msg))
                if msg.to_ascii_lowercase().contains("already indexed") =>
            {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    async fn write_nodes(
        &self,
        db: &str,
        w: &NodeWrite<'_>,
    ) -> Result<Vec<super::super::NodeRef>, GraphError> {
        if w.rows.is_empty() {
            return Ok(Vec::new());
        }
        let columns: Vec<&super::super::Values> = w.props.iter().map(|p| p.values).collect();
        let names: Vec<&str> = w.props.iter().map(|p| p.name).collect();
        let mut q = rows_param(w.rows, None, &columns, &names)?;
        q.push_str(&node_statement_with(w, &wrap));
        let reply = self.write_query(&self.key_of(db).await?, &q).await?;
        match int_column(&reply) {
            Some(ids) if ids.len() == w.rows.len() => Ok(ids),
            _ => Err(GraphError::Permanent(format!(
                "FalkorDB returned {} node ids for {} created nodes",
                int_column(&reply).map_or(0, |i| i.len()),
                w.rows.len()
            ))),
        }
    }

    async fn write_relationships(&self, db: &str, w: &RelWrite<'_>) -> Result<u64, GraphError> {
        if w.rows.is_empty() {
            return Ok(0);
        }
        let columns: Vec<&super::super::Values> = w.props.iter().map(|p| p.values).collect();
        let names: Vec<&str> = w.props.iter().map(|p| p.name).collect();
        let mut q = rows_param(w.rows, Some(w.ends), &columns, &names)?;
        q.push_str(&relationship_statement_with(w, &wrap));
        let reply = self.write_query(&self.key_of(db).await?, &q).await?;
        Ok(stat(&reply, "Relationships created"))
    }

    fn lacks(&self, ty: PropType) -> Option<String> {
        constructor(ty).err().map(|e| match e {
            GraphError::Permanent(m) | GraphError::Transient(m) | GraphError::Fenced(m) => m,
        })
    }

    fn can_bulk(&self) -> bool {
        true
    }

    async fn bulk_call(&self, db: &str, args: Vec<Vec<u8>>) -> Result<(), GraphError> {
        let key = self.key_of(db).await?;
        let mut con = self.checked_writer().await?;
        let mut cmd = redis::cmd("GRAPH.BULK");
        cmd.arg(&key);
        for a in &args {
            cmd.arg(a.as_slice());
        }
        let reply: RedisValue = cmd.query_async(&mut con).await.map_err(map_err)?;
        let text = match &reply {
            RedisValue::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            RedisValue::SimpleString(s) => s.clone(),
            other => format!("{other:?}"),
        };
        if text.contains("nodes created") {
            Ok(())
        } else {
            Err(GraphError::Permanent(format!(
                "unexpected GRAPH.BULK reply for `{key}`: {text}"
            )))
        }
    }

    async fn bulk_reserve(&self, db: &str, nodes: u64) -> Result<(), GraphError> {
        // A call with no tokens: `Graph_AllocateNodes(nodes)`, nothing created.
        let zero = b"0".to_vec();
        let args = vec![
            nodes.to_string().into_bytes(),
            zero.clone(),
            zero.clone(),
            zero,
        ];
        self.bulk_call(db, args).await
    }

    async fn bulk_sync(
        &self,
        db: &str,
        target: &super::super::falkordb_bulk::SyncTarget,
    ) -> Result<(), GraphError> {
        use super::super::falkordb_bulk::SyncTarget;
        // A query reading the matrix makes FalkorDB resize it and apply its
        // pending changes (on a worker thread, under the graph's read lock).
        let key = self.key_of(db).await?;
        let q = match target {
            SyncTarget::NodeLabels => "MATCH (n) WHERE id(n) = 0 RETURN labels(n)".to_owned(),
            SyncTarget::Adjacency => "MATCH (a)-->() WHERE id(a) = 0 RETURN count(a)".to_owned(),
            SyncTarget::Label(label) => {
                format!("MATCH (n:{}) WHERE id(n) = 0 RETURN count(n)", quote(label))
            }
            SyncTarget::RelType(rel_type) => format!(
                "MATCH (a)-[:{}]->() WHERE id(a) = 0 RETURN count(a)",
                quote(rel_type)
            ),
        };
        self.query(&key, &q).await.map(|_| ())
    }

    fn limits(&self) -> super::super::StoreLimits {
        super::super::StoreLimits {
            property_keys: Some(FALKORDB_MAX_PROPERTY_KEYS),
        }
    }

    async fn counts(&self, db: &str) -> Result<Counts, GraphError> {
        let key = self.key_of(db).await?;
        let nodes = self.query(&key, super::super::cypher::COUNT_NODES).await?;
        let rels = self
            .query(&key, super::super::cypher::COUNT_RELATIONSHIPS)
            .await?;
        match (single_int(&nodes), single_int(&rels)) {
            (Some(nodes), Some(relationships)) => Ok(Counts {
                nodes,
                relationships,
            }),
            _ => Err(GraphError::Permanent(format!(
                "unexpected count reply from FalkorDB: {nodes:?} / {rels:?}"
            ))),
        }
    }
}
