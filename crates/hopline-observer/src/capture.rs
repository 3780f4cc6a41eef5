//! Change capture: the `hopline` schema, and a trigger on each watched table that writes every
//! INSERT, UPDATE and DELETE into `hopline.change_log` inside the writer's transaction.
//!
//! Each change-log row holds the table, the operation, the primary key (a JSON object of the
//! key columns), the row before and after as JSON, the writing transaction's id (`xid`, 64-bit,
//! never wrapping), the trace context the transaction set with
//! `SET LOCAL hopline.traceparent = '00-…'` (if any) and when it was written. A statement-level
//! trigger sends `NOTIFY hopline_changes` (delivered at commit, once per transaction): the
//! observer's wake-up, never its only signal.
//!
//! Everything is created idempotently, under an advisory lock (two observers starting at once
//! do not race). `hopline observer migrate --print` shows this SQL for review.

use crate::config::TableName;

/// The channel the wake-up trigger notifies.
pub const CHANNEL: &str = "hopline_changes";

/// The version of the schema below, kept in `hopline.meta`.
pub const SCHEMA_VERSION: i32 = 1;

/// The schema objects: tables, the capture and wake-up functions.
pub const SCHEMA_SQL: &str = r#"
SELECT pg_advisory_xact_lock(hashtext('hopline.migrate'));

CREATE SCHEMA IF NOT EXISTS hopline;

-- One row: the schema's version and this database's instance id (event ids start with it, so
-- they stay unique if the schema is ever dropped and created again).
CREATE TABLE IF NOT EXISTS hopline.meta (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    schema_version integer NOT NULL,
    instance text NOT NULL DEFAULT substr(md5(random()::text || clock_timestamp()::text), 1, 16)
);
INSERT INTO hopline.meta (schema_version) VALUES (1) ON CONFLICT DO NOTHING;

-- Every captured change. `seq` numbers rows in the order their statements ran, which is not
-- commit order; observers read by transaction id windows (see the source's docs).
CREATE TABLE IF NOT EXISTS hopline.change_log (
    seq bigserial PRIMARY KEY,
    xid bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint,
    table_schema text NOT NULL,
    table_name text NOT NULL,
    op text NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
    key jsonb NOT NULL,
    before jsonb,
    after jsonb,
    traceparent text,
    captured_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS change_log_xid ON hopline.change_log (xid);

-- Each observer's progress (its consumer name), saved after the actions of the changes
-- up to it have succeeded or gone to the dead-letter queue.
CREATE TABLE IF NOT EXISTS hopline.checkpoint (
    consumer text PRIMARY KEY,
    window_lo bigint NOT NULL,
    window_hi bigint NOT NULL,
    last_seq bigint NOT NULL,
    saved_at timestamptz NOT NULL DEFAULT now()
);

-- Actions that gave up: the change, the action, the last error, and what is needed to send
-- the request again (environment references unexpanded: no secret is stored).
CREATE TABLE IF NOT EXISTS hopline.dlq (
    id bigserial PRIMARY KEY,
    consumer text NOT NULL,
    event_id text NOT NULL,
    change_seq bigint NOT NULL,
    table_name text NOT NULL,
    key jsonb NOT NULL,
    observer text NOT NULL,
    action text NOT NULL,
    request jsonb NOT NULL,
    attempts integer NOT NULL,
    last_error text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    retried_at timestamptz
);

CREATE OR REPLACE FUNCTION hopline.capture() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    old_row jsonb;
    new_row jsonb;
    row_key jsonb := '{}'::jsonb;
    key_column text;
BEGIN
    IF TG_OP <> 'INSERT' THEN old_row := to_jsonb(OLD); END IF;
    IF TG_OP <> 'DELETE' THEN new_row := to_jsonb(NEW); END IF;
    FOREACH key_column IN ARRAY TG_ARGV LOOP
        row_key := row_key || jsonb_build_object(key_column, coalesce(new_row, old_row) -> key_column);
    END LOOP;
    INSERT INTO hopline.change_log (table_schema, table_name, op, key, before, after, traceparent)
    VALUES (TG_TABLE_SCHEMA, TG_TABLE_NAME, lower(TG_OP), row_key, old_row, new_row,
            nullif(current_setting('hopline.traceparent', true), ''));
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION hopline.wake() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM pg_notify('hopline_changes', '');
    RETURN NULL;
END
$fn$;
"#;

/// The SQL that puts the capture and wake-up triggers on `table`, keyed by its primary key
/// (looked up when it runs; a table without one is refused). `replace`: create them again even
/// if they exist (a migration); otherwise only when missing (a start), which leaves a busy
/// table's locks alone.
pub fn trigger_sql(table: &TableName, replace: bool) -> String {
    let regclass = quote_literal(&format!("{}.{}", quote_ident(&table.schema), quote_ident(&table.table)));
    let shown = quote_literal(&table.qualified());
    let when = |trigger: &str, create: &str| {
        if replace {
            format!("    {create}")
        } else {
            format!(
                "    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = rel AND tgname = '{trigger}') THEN\n    \
                 {create}\n    END IF;"
            )
        }
    };
    let capture = when(
        "hopline_capture",
        "EXECUTE format('CREATE OR REPLACE TRIGGER hopline_capture AFTER INSERT OR UPDATE OR DELETE ON %s '\n        \
         'FOR EACH ROW EXECUTE FUNCTION hopline.capture(%s)', rel, key_columns);",
    );
    let wake = when(
        "hopline_wake",
        "EXECUTE format('CREATE OR REPLACE TRIGGER hopline_wake AFTER INSERT OR UPDATE OR DELETE ON %s '\n        \
         'FOR EACH STATEMENT EXECUTE FUNCTION hopline.wake()', rel);",
    );
    format!(
        r#"
DO $do$
DECLARE
    rel regclass := to_regclass({regclass});
    key_columns text;
BEGIN
    IF rel IS NULL THEN
        RAISE EXCEPTION 'table % does not exist', {shown};
    END IF;
    SELECT string_agg(quote_literal(a.attname), ', ' ORDER BY k.ord) INTO key_columns
    FROM pg_index i
    CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
    WHERE i.indrelid = rel AND i.indisprimary;
    IF key_columns IS NULL THEN
        RAISE EXCEPTION 'table % has no primary key; the observer keys changes by it', {shown};
    END IF;
{capture}
{wake}
END
$do$;
"#
    )
}

/// The whole migration for `tables`, as `hopline observer migrate --print` shows it.
pub fn migration_sql(tables: &[TableName]) -> String {
    let mut sql = String::from("BEGIN;\n");
    sql.push_str(SCHEMA_SQL);
    for table in tables {
        sql.push_str(&trigger_sql(table, true));
    }
    sql.push_str("\nCOMMIT;\n");
    sql
}

/// `'text'`, quotes doubled.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `"name"`, quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_name_their_table_quoted_and_only_replace_in_a_migration() {
        let table = TableName::parse("sales.orders").unwrap();
        let start = trigger_sql(&table, false);
        assert!(start.contains(r#"to_regclass('"sales"."orders"')"#), "{start}");
        assert!(start.contains("NOT EXISTS (SELECT 1 FROM pg_trigger"), "{start}");
        assert!(!trigger_sql(&table, true).contains("NOT EXISTS (SELECT 1 FROM pg_trigger"));
        let all = migration_sql(&[table]);
        assert!(all.starts_with("BEGIN;") && all.trim_end().ends_with("COMMIT;"));
        assert!(all.contains("CREATE TABLE IF NOT EXISTS hopline.change_log"));
    }

    #[test]
    fn quoting_doubles_quotes() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
