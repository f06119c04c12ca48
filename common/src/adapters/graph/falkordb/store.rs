//! The admin path of the FalkorDB store: databases, the alias, the fenced
//! lifecycle, health, checks, schema and census.

use super::*;

#[async_trait]
impl GraphStore for FalkorStore {
    fn kind(&self) -> GraphKind {
        GraphKind::Falkordb
    }

    async fn ping(&self) -> Result<(), GraphError> {
        let mut con = self.con.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut con)
            .await
            .map_err(map_err)?;
        let _: Vec<String> = redis::cmd("GRAPH.LIST")
            .query_async(&mut con)
            .await
            .map_err(|e| {
                GraphError::Permanent(format!(
                    "server answers but is not FalkorDB (GRAPH.LIST failed: {e})"
                ))
            })?;
        Ok(())
    }

    async fn health(&self) -> Result<Health, GraphError> {
        let mut con = self.con.clone();
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut con)
            .await
            .map_err(map_err)?;
        let field = |name: &str| -> Option<f64> {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
        };
        let used = field("used_memory");
        let limit = field("maxmemory")
            .filter(|m| *m > 0.0)
            .or_else(|| field("total_system_memory"));
        let memory_used_percent = match (used, limit) {
            (Some(u), Some(l)) if l > 0.0 => Some(u / l * 100.0),
            _ => None,
        };
        Ok(Health {
            databases: self.list_databases().await?.len(),
            max_databases: None,
            memory_used_percent,
            pagecache_used_percent: None,
        })
    }

    async fn list_databases(&self) -> Result<Vec<String>, GraphError> {
        let mut con = self.con.clone();
        let graphs: Vec<String> = redis::cmd("GRAPH.LIST")
            .query_async(&mut con)
            .await
            .map_err(map_err)?;
        let mut out = Vec::with_capacity(graphs.len());
        for graph in graphs {
            // An alias graph is listed under the database it holds.
            let target = match Customer::parse(&graph) {
                Ok(_) => self.alias_target(&graph).await?,
                Err(_) => None,
            };
            out.push(target.unwrap_or(graph));
        }
        Ok(out)
    }

    async fn alias_target(&self, alias: &str) -> Result<Option<String>, GraphError> {
        let mut con = self.con.clone();
        con.get(alias_key(alias)).await.map_err(map_err)
    }

    async fn create_database(&self, db: &str) -> Result<(), GraphError> {
        if self.exists(db).await? || self.live_alias(db).await?.is_some() {
            return Err(GraphError::Permanent(format!(
                "graph `{db}` already exists"
            )));
        }
        // An unfenced database carries no lifecycle mark (a stale one from
        // an earlier database of that name must not make it look verified).
        let mut con = self.con.clone();
        let _: i64 = con.del(mark_key(db)).await.map_err(map_err)?;
        // A graph key comes into being with its first write; an empty query
        // creates it, so that even an empty snapshot has a database.
        self.query(db, "RETURN 0").await?;
        Ok(())
    }

    async fn drop_database(&self, db: &str) -> Result<(), GraphError> {
        if let Some(alias) = self.live_alias(db).await? {
            return Err(GraphError::Permanent(format!(
                "database `{db}` is the live target of alias `{alias}`; switch the alias first"
            )));
        }
        if !self.exists(db).await? {
            return Ok(());
        }
        let mut con = self.con.clone();
        let _: RedisValue = redis::cmd("GRAPH.DELETE")
            .arg(db)
            .query_async(&mut con)
            .await
            .map_err(map_err)?;
        let _: i64 = con.del(mark_key(db)).await.map_err(map_err)?;
        Ok(())
    }

    async fn switch_alias(&self, alias: &str, db: &str) -> Result<(), GraphError> {
        let mut con = self.con.clone();
        let _: i64 = redis::Script::new(SWITCH)
            .key(alias_key(alias))
            .key(alias)
            .key(db)
            .arg(db)
            .invoke_async(&mut con)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn drop_alias(&self, alias: &str) -> Result<(), GraphError> {
        let mut con = self.con.clone();
        let _: i64 = redis::Script::new(UNALIAS)
            .key(alias_key(alias))
            .key(alias)
            .invoke_async(&mut con)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn fence_seen(&self, customer: &str) -> Result<u64, GraphError> {
        let mut con = self.con.clone();
        let seen: Option<u64> = con.get(fence_key(customer)).await.map_err(map_err)?;
        Ok(seen.unwrap_or(0))
    }

    async fn create_fenced(&self, db: &str, fence: &Fence) -> Result<(), GraphError> {
        if self.live_alias(db).await?.is_some() {
            return Err(GraphError::Permanent(format!(
                "graph `{db}` already exists"
            )));
        }
        let snapshot = DatabaseName::parse(db)
            .map(|d| d.snapshot.get())
            .unwrap_or(0);
        let mut con = self.con.clone();
        let _: i64 = redis::Script::new(&fenced(CREATE_FENCED))
            .key(fence_key(&fence.customer))
            .key(mark_key(db))
            .key(db)
            .arg(fence.token)
            .arg(snapshot)
            .arg(db)
            .invoke_async(&mut con)
            .await
            .map_err(map_fenced)?;
        // The mark says `loading` before the graph exists: a crash in
        // between leaves only a mark, which the next create replaces.
        self.query(db, "RETURN 0").await?;
        Ok(())
    }

    async fn mark_verified(&self, db: &str, fence: &Fence) -> Result<(), GraphError> {
        self.mark_loaded(db, fence, "verified").await
    }

    async fn mark_held(&self, db: &str, fence: &Fence) -> Result<(), GraphError> {
        self.mark_loaded(db, fence, "held").await
    }

    async fn release_held(&self, db: &str, fence: &Fence) -> Result<(), GraphError> {
        let mut con = self.con.clone();
        let _: i64 = redis::Script::new(&fenced(RELEASE_HELD))
            .key(fence_key(&fence.customer))
            .key(mark_key(db))
            .key(db)
            .arg(fence.token)
            .arg(db)
            .invoke_async(&mut con)
            .await
            .map_err(map_fenced)?;
        Ok(())
    }

    async fn read_scalar(
        &self,
        db: &str,
        query: &str,
        timeout: Duration,
    ) -> Result<Scalar, GraphError> {
        let key = self.key_of(db).await?;
        // Its own connection, dropped with this future (by the caller's
        // timeout too); the server may finish the query later on its own.
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(timeout + Duration::from_secs(1)));
        let mut con = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(map_err)?;
        let reply: RedisValue = redis::cmd("GRAPH.RO_QUERY")
            .arg(&key)
            .arg(query)
            .arg("TIMEOUT")
            .arg(
                u64::try_from(timeout.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
            )
            .query_async(&mut con)
            .await
            .map_err(map_err)?;
        Ok(scalar_of(&reply))
    }

    async fn apply_schema(&self, db: &str, statement: &SchemaStatement) -> Result<(), GraphError> {
        let key = self.key_of(db).await?;
        let index = |label: &str, props: &[String]| {
            let props: Vec<String> = props.iter().map(|p| format!("n.{}", quote(p))).collect();
            format!(
                "CREATE INDEX FOR (n:{}) ON ({})",
                quote(label),
                props.join(", ")
            )
        };
        let ignore = |r: Result<RedisValue, GraphError>, what: &str| match r {
            Err(GraphError::Permanent(m)) if m.to_ascii_lowercase().contains(what) => Ok(()),
            other => other.map(|_| ()),
        };
        match statement {
            SchemaStatement::Index { label, properties } => ignore(
                self.query(&key, &index(label, properties)).await,
                "already indexed",
            ),
            SchemaStatement::Unique { label, property } => {
                // FalkorDB needs an exact-match index under a unique constraint.
                let q = index(label, std::slice::from_ref(property));
                ignore(self.query(&key, &q).await, "already indexed")?;
                let mut con = self.con.clone();
                let created: Result<RedisValue, GraphError> = redis::cmd("GRAPH.CONSTRAINT")
                    .arg("CREATE")
                    .arg(&key)
                    .arg("UNIQUE")
                    .arg("NODE")
                    .arg(label)
                    .arg("PROPERTIES")
                    .arg(1)
                    .arg(property)
                    .query_async(&mut con)
                    .await
                    .map_err(map_err);
                ignore(created, "already exists")?;
                // Constraints are built in the background: wait until it is
                // enforced (immediate on an empty graph).
                for _ in 0..300 {
                    let reply = self.query(&key, "CALL db.constraints() YIELD label, properties, status RETURN label, properties, status").await?;
                    match constraint_status(&reply, label, property).as_deref() {
                        Some("OPERATIONAL") => return Ok(()),
                        Some("FAILED") => {
                            return Err(GraphError::Permanent(format!(
                                "FalkorDB could not build the uniqueness constraint on :{label}({property})"
                            )))
                        }
                        _ => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
                Err(GraphError::Transient(format!(
                    "the uniqueness constraint on :{label}({property}) was not operational after 30 s"
                )))
            }
        }
    }

    async fn census(&self, db: &str) -> Result<Census, GraphError> {
        let key = self.key_of(db).await?;
        let counts = self.counts(db).await?;
        let mut census = Census {
            nodes: counts.nodes,
            relationships: counts.relationships,
            ..Census::default()
        };
        let labels = self.query(&key, "CALL db.labels()").await?;
        for label in first_column_strings(&labels)? {
            let q = format!("MATCH (n:{}) RETURN count(n)", quote(&label));
            let n = single_int(&self.query(&key, &q).await?).unwrap_or(0);
            census.labels.insert(label, n);
        }
        let types = self.query(&key, "CALL db.relationshipTypes()").await?;
        for ty in first_column_strings(&types)? {
            let q = format!("MATCH ()-[r:{}]->() RETURN count(r)", quote(&ty));
            let n = single_int(&self.query(&key, &q).await?).unwrap_or(0);
            census.types.insert(ty, n);
        }
        Ok(census)
    }

    async fn switch_fenced(
        &self,
        alias: &str,
        db: &str,
        fence: &Fence,
        mode: SwitchMode,
    ) -> Result<bool, GraphError> {
        let snapshot = DatabaseName::parse(db)
            .map(|d| d.snapshot.get())
            .map_err(|e| {
                GraphError::Permanent(format!("`{db}` is not a snapshot database: {e}"))
            })?;
        let mut con = self.con.clone();
        let n: i64 = redis::Script::new(&fenced(SWITCH_FENCED))
            .key(fence_key(&fence.customer))
            .key(alias_key(alias))
            .key(alias)
            .key(db)
            .key(mark_key(db))
            .arg(fence.token)
            .arg(db)
            .arg(match mode {
                SwitchMode::Forward => "forward",
                SwitchMode::Rollback => "rollback",
            })
            .arg(snapshot)
            .invoke_async(&mut con)
            .await
            .map_err(map_fenced)?;
        Ok(n == 1)
    }

    async fn drop_fenced(&self, db: &str, fence: &Fence) -> Result<(), GraphError> {
        let alias = DatabaseName::parse(db)
            .map(|d| d.customer.to_string())
            .unwrap_or_else(|_| fence.customer.clone());
        let mut con = self.con.clone();
        let _: i64 = redis::Script::new(&fenced(DROP_FENCED))
            .key(fence_key(&fence.customer))
            .key(mark_key(db))
            .key(db)
            .key(alias_key(&alias))
            .arg(fence.token)
            .arg(db)
            .invoke_async(&mut con)
            .await
            .map_err(map_fenced)?;
        Ok(())
    }

    async fn database_state(&self, db: &str) -> Result<DbState, GraphError> {
        let mut con = self.con.clone();
        let state: Option<String> = con.hget(mark_key(db), "state").await.map_err(map_err)?;
        Ok(match state.as_deref() {
            Some("loading") => DbState::Loading,
            Some("verified") => DbState::Verified,
            Some("held") => DbState::Held,
            Some("retired") => DbState::Retired,
            _ => DbState::Unmarked,
        })
    }

    async fn stray_aliases(&self) -> Result<Vec<(String, String)>, GraphError> {
        let mut con = self.con.clone();
        let graphs: Vec<String> = redis::cmd("GRAPH.LIST")
            .query_async(&mut con)
            .await
            .map_err(map_err)?;
        let mut out = Vec::new();
        for graph in graphs {
            if Customer::parse(&graph).is_err() || DatabaseName::parse(&graph).is_ok() {
                continue;
            }
            if self.alias_target(&graph).await?.is_none() {
                out.push((
                    graph.clone(),
                    format!("graph `{graph}` is named like customer {graph}'s alias but snapswitch does not manage it (no {}); it blocks every switch of {graph}: check what it holds, then GRAPH.DELETE {graph} (or rename it)", alias_key(&graph)),
                ));
            }
        }
        Ok(out)
    }
}
