/*
 * The SQL that store/db*.c run, in one place so it can be read and reviewed
 * as a whole.  Every statement is parameterized; none is ever built from
 * data.  db.c prepares each one lazily, once per connection, under its name.
 */
#ifndef STORE_INDEX_H
#define STORE_INDEX_H

enum index_id {
	INDEX_ACCOUNT_INSERT,
	INDEX_ACCOUNT_SELECT,
	INDEX_KNOWN_SELECT,
	INDEX_BLOB_INSERT,
	INDEX_CHUNK_INSERT,
	INDEX_DELIVERY_INSERT,
	INDEX_MARK_DELETED,
	INDEX_MARK_ABSENT,
	INDEX_POLL_INSERT,
	INDEX_ACCOUNT_LIST,
	INDEX_EACH_MESSAGE,
	INDEX_EACH_BLOB,
	INDEX_BLOB_SELECT,
	INDEX_CHUNK_SELECT,
	INDEX_DICT_SELECT,
	INDEX_DICT_INSERT,
	INDEX_DICT_LATEST,
	INDEX_SAMPLE_COUNT,
	INDEX_SAMPLE_SELECT,
	INDEX_MIGRATION_LOCK,
	INDEX_MIGRATION_SELECT,
	INDEX_MIGRATION_INSERT,
	INDEX_MIGRATION_STATE,
	INDEX_DATABASE_SELECT,
	INDEX_SYNC_COMMIT_LOCAL,
	/* The ledger: db_ledger.c. */
	INDEX_LEDGER_LOCK,
	INDEX_LEDGER_SIZE,
	INDEX_LEDGER_PENDING,
	INDEX_LEDGER_PENDING_DELETE,
	INDEX_LEDGER_INSERT,
	INDEX_LEDGER_NODE_INSERT,
	INDEX_LEDGER_LEAF_HASH,
	INDEX_LEDGER_NODE_HASH,
	INDEX_LEDGER_CHECKPOINT_INSERT,
	INDEX_LEDGER_CHECKPOINTS,
	INDEX_LEDGER_ENTRIES,
	INDEX_LEDGER_MESSAGE_LEAVES,
	INDEX_LEDGER_UNLEDGERED,
	INDEX_LEDGER_ORPHANS,
	INDEX_LEDGER_UNAUTHORIZED,
	INDEX_LEDGER_APPEND,
	INDEX_LEDGER_BAD_NODES,
	INDEX_LEDGER_NODE_COUNTS,
	INDEX_REFUSAL_SELECT,
	INDEX_REFUSAL_RECORD,
	INDEX_REFUSAL_PRUNE,
	INDEX_ACCOUNT_REAUTH,
	INDEX_SEEN_SELECT,
	INDEX_DATES_SELECT,
	INDEX_SEEN_UPDATE,
	INDEX_CAPA_UPSERT,
	INDEX_CAPA_SELECT,
	INDEX_LAST_POLL_SELECT,
	INDEX_MESSAGE_INSERT,
	INDEX_MESSAGE_DELETE_STALE,
	INDEX_UNINDEXED_SELECT,
	INDEX_UNINDEXED_COUNT,
	INDEX_COUNT
};

struct index_stmt {
	const char *name;	/* prepared statement name */
	const char *label;	/* for error text: "INSERT blob" */
	const char *sql;
	int nparams;
};

/* Indexed by enum index_id. */
extern const struct index_stmt index_stmts[INDEX_COUNT];

/*
 * Run unprepared, once each where they are needed: setting up a session
 * ($1 statement_timeout, $2 lock_timeout, as text), reading back its
 * synchronous_commit, creating the migration bookkeeping before any
 * migration, and lifting the timeouts for a migration's transaction.
 */
extern const char index_session_setup[];
extern const char index_sync_commit_show[];
extern const char index_migration_bootstrap[];
extern const char index_migration_no_timeouts[];

#endif
