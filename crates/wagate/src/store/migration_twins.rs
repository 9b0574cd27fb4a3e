//! The two migration sets, `migrations/sqlite/` and `migrations/postgres/`,
//! are twins written by hand, each in its own dialect: applied to a fresh
//! database they must make the same tables, the same columns (by name, and
//! whether each may be NULL) and the same indexes (by name, table, columns,
//! uniqueness and whether partial). Column types differ by design (TEXT
//! ids in the "C" collation, BIGINT for every integer, BYTEA) and are not
//! compared, nor are a partial index's conditions (each dialect prints its
//! own).
//!
//! What the two databases say differently about the same schema is
//! normalised before comparing, each case named here:
//! - an index that only backs a constraint has a name each database makes
//!   up (`sqlite_autoindex_t_1`, `t_pkey`, `t_name_key`): it is named for
//!   what it backs instead, `t primary key` or `t unique (name)`;
//! - a primary key column is NOT NULL: PostgreSQL makes it so, while SQLite
//!   would take a NULL in a non-INTEGER one unless declared NOT NULL (its
//!   documented legacy quirk; the gateway always writes ids);
//! - PostgreSQL's `rowid` column stands for SQLite's implicit rowid (see
//!   `migrations/postgres/0012_messages.sql`), so it is not compared.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::Row;

use super::{PostgresStore, SqliteStore, StoreError};

/// A schema as compared: no types, no conditions.
#[derive(Debug, Default)]
struct Schema {
    /// Table -> column -> whether it is NOT NULL.
    columns: BTreeMap<String, BTreeMap<String, bool>>,
    /// Index (named as the module doc says) -> its shape.
    indexes: BTreeMap<String, Index>,
}

#[derive(Debug, PartialEq, Eq)]
struct Index {
    table: String,
    columns: Vec<String>,
    unique: bool,
    partial: bool,
}

/// What an index is for: its own name (`CREATE INDEX`), or the constraint
/// it backs, whose index each database names its own way.
enum Origin {
    Created(String),
    PrimaryKey,
    Unique,
}

impl Schema {
    fn column(&mut self, table: String, column: String, not_null: bool) {
        self.columns
            .entry(table)
            .or_default()
            .insert(column, not_null);
    }

    fn index(&mut self, origin: Origin, index: Index) {
        let name = match origin {
            Origin::Created(name) => name,
            Origin::PrimaryKey => format!("{} primary key", index.table),
            Origin::Unique => format!("{} unique ({})", index.table, index.columns.join(", ")),
        };
        self.indexes.insert(name, index);
    }
}

/// Every way `sqlite` and `postgres` differ, one line each.
fn differences(sqlite: &Schema, postgres: &Schema) -> Vec<String> {
    let mut found = Vec::new();
    for table in names(&sqlite.columns, &postgres.columns) {
        match (sqlite.columns.get(table), postgres.columns.get(table)) {
            (Some(a), Some(b)) => {
                for column in names(a, b) {
                    let (a, b) = (a.get(column), b.get(column));
                    if a != b {
                        found.push(format!(
                            "column {table}.{column}: SQLite {}, PostgreSQL {}",
                            nullability(a),
                            nullability(b)
                        ));
                    }
                }
            }
            (a, _) => found.push(format!(
                "table {table} only in {}",
                if a.is_some() { "SQLite" } else { "PostgreSQL" }
            )),
        }
    }
    for name in names(&sqlite.indexes, &postgres.indexes) {
        let (a, b) = (sqlite.indexes.get(name), postgres.indexes.get(name));
        if a != b {
            found.push(format!("index {name}: SQLite {a:?}, PostgreSQL {b:?}"));
        }
    }
    found
}

/// The names either side has, in order.
fn names<'a, V>(a: &'a BTreeMap<String, V>, b: &'a BTreeMap<String, V>) -> BTreeSet<&'a String> {
    a.keys().chain(b.keys()).collect()
}

fn nullability(column: Option<&bool>) -> &'static str {
    match column {
        None => "missing",
        Some(true) => "NOT NULL",
        Some(false) => "nullable",
    }
}

/// sqlx's own bookkeeping, which is no twin of anything.
fn is_ours(table: &str) -> bool {
    !table.starts_with("_sqlx") && !table.starts_with("sqlite_")
}

async fn sqlite_schema(store: &SqliteStore) -> Result<Schema, StoreError> {
    let mut schema = Schema::default();
    let columns = sqlx::query(
        "SELECT m.name AS table_name, p.name AS column_name, p.\"notnull\" AS not_null, \
         p.pk AS pk FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table'",
    )
    .fetch_all(&store.pool)
    .await?;
    for row in &columns {
        let table: String = row.try_get("table_name")?;
        if is_ours(&table) {
            let not_null =
                row.try_get::<i64, _>("not_null")? != 0 || row.try_get::<i64, _>("pk")? > 0;
            schema.column(table, row.try_get("column_name")?, not_null);
        }
    }
    let indexes = sqlx::query(
        "SELECT m.name AS table_name, l.name AS index_name, l.\"unique\" AS is_unique, \
         l.origin AS origin, l.partial AS partial, \
         (SELECT group_concat(c, ',') FROM (SELECT coalesce(i.name, '<expression>') AS c \
          FROM pragma_index_info(l.name) i ORDER BY i.seqno)) AS columns \
         FROM sqlite_master m, pragma_index_list(m.name) l WHERE m.type = 'table'",
    )
    .fetch_all(&store.pool)
    .await?;
    for row in &indexes {
        let table: String = row.try_get("table_name")?;
        if !is_ours(&table) {
            continue;
        }
        let origin = match row.try_get::<String, _>("origin")?.as_str() {
            "pk" => Origin::PrimaryKey,
            "u" => Origin::Unique,
            _ => Origin::Created(row.try_get("index_name")?),
        };
        let columns: Option<String> = row.try_get("columns")?;
        schema.index(
            origin,
            Index {
                table,
                columns: split(columns),
                unique: row.try_get::<i64, _>("is_unique")? != 0,
                partial: row.try_get::<i64, _>("partial")? != 0,
            },
        );
    }
    Ok(schema)
}

async fn postgres_schema(store: &PostgresStore) -> Result<Schema, StoreError> {
    let mut schema = Schema::default();
    let columns = sqlx::query(
        "SELECT table_name::text AS table_name, column_name::text AS column_name, \
         is_nullable::text = 'NO' AS not_null FROM information_schema.columns \
         WHERE table_schema = current_schema()",
    )
    .fetch_all(&store.pool)
    .await?;
    for row in &columns {
        let table: String = row.try_get("table_name")?;
        let column: String = row.try_get("column_name")?;
        if is_ours(&table) && column != "rowid" {
            schema.column(table, column, row.try_get("not_null")?);
        }
    }
    // pg_index rather than pg_indexes' definitions: the columns, flags and
    // backing constraint come structured, not as SQL to parse.
    let indexes = sqlx::query(
        "SELECT t.relname::text AS table_name, i.relname::text AS index_name, \
         x.indisunique AS is_unique, x.indisprimary AS is_primary, \
         x.indpred IS NOT NULL AS partial, \
         EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid \
                 AND c.contype = 'u') AS backs_unique, \
         array_to_string(ARRAY(SELECT coalesce(a.attname::text, '<expression>') \
             FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, n) \
             LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum \
             ORDER BY k.n), ',') AS columns \
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = current_schema()",
    )
    .fetch_all(&store.pool)
    .await?;
    for row in &indexes {
        let table: String = row.try_get("table_name")?;
        if !is_ours(&table) {
            continue;
        }
        let origin = if row.try_get("is_primary")? {
            Origin::PrimaryKey
        } else if row.try_get("backs_unique")? {
            Origin::Unique
        } else {
            Origin::Created(row.try_get("index_name")?)
        };
        let columns: Option<String> = row.try_get("columns")?;
        schema.index(
            origin,
            Index {
                table,
                columns: split(columns),
                unique: row.try_get("is_unique")?,
                partial: row.try_get("partial")?,
            },
        );
    }
    Ok(schema)
}

fn split(columns: Option<String>) -> Vec<String> {
    columns
        .map(|c| c.split(',').map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The schema of a fresh SQLite database, checked for being one: a test
/// comparing two empty readings would pass for nothing.
async fn fresh_sqlite() -> Result<(SqliteStore, Schema), StoreError> {
    let store = SqliteStore::connect("sqlite::memory:").await?;
    let schema = sqlite_schema(&store).await?;
    assert!(
        schema.columns.len() > 20
            && schema.columns["sessions"].get("org_id") == Some(&true)
            && schema.indexes.contains_key("sessions_by_org_created")
            && schema.indexes.contains_key("sessions primary key")
            && schema.indexes.contains_key("organizations unique (name)"),
        "SQLite's schema was not read: {schema:?}"
    );
    Ok((store, schema))
}

#[tokio::test]
async fn both_migration_sets_make_the_same_tables_columns_and_indexes() -> Result<(), StoreError> {
    let (_sqlite, sqlite) = fresh_sqlite().await?;
    let Some(database) = super::testing::TestDatabase::create().await else {
        return Ok(());
    };
    let postgres = postgres_schema(
        &PostgresStore::connect_with(database.url(), super::postgres::DEFAULT_POOL_SIZE).await?,
    )
    .await?;
    assert_eq!(differences(&sqlite, &postgres), Vec::<String>::new());
    Ok(())
}

/// The comparison sees what a one-sided migration would add: a column, a
/// nullability, an index, a table.
#[tokio::test]
async fn a_change_to_one_twin_is_reported() -> Result<(), StoreError> {
    let (store, before) = fresh_sqlite().await?;
    for statement in [
        "ALTER TABLE sessions ADD COLUMN only_here TEXT",
        "CREATE INDEX sessions_only_here ON sessions (label)",
        "CREATE TABLE only_here (id TEXT PRIMARY KEY, note TEXT NOT NULL)",
        "DROP INDEX events_by_created",
    ] {
        sqlx::query(statement).execute(&store.pool).await?;
    }
    let after = sqlite_schema(&store).await?;
    let found = differences(&after, &before);
    for expected in [
        "column sessions.only_here: SQLite nullable, PostgreSQL missing",
        "index sessions_only_here: SQLite Some(",
        "table only_here only in SQLite",
        "index only_here primary key: SQLite Some(",
        "index events_by_created: SQLite None",
    ] {
        assert!(
            found.iter().any(|f| f.starts_with(expected)),
            "{expected:?} not in {found:?}"
        );
    }
    assert_eq!(found.len(), 5, "{found:?}");
    assert_eq!(differences(&before, &before), Vec::<String>::new());
    Ok(())
}
