/*
 * worker.c: the launcher and the tick worker.
 *
 * Design.  Two processes.  The launcher is a static background worker
 * connected to no database (shared catalogs only), so it never blocks a
 * DROP DATABASE.  It waits until mana_ai.database and mana_ai.role exist
 * (logging once per state change, never exiting: no crash loop) and then
 * starts the tick worker as a dynamic background worker, restarting it
 * with a growing delay if it dies.  The tick worker connects to the
 * database as the role, waits quietly until the extension is created,
 * marks tick runs left unfinished by a crash as failed, and ticks every
 * mana_ai.tick_interval on a latch.  Neither process ever holds a
 * transaction across a sleep.
 *
 * Owns process start-up, signals, waiting and the worker's life cycle.
 * Must never run a tick itself: tick.c does, the same code as
 * SELECT mana_ai_tick().
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "ops/guc.h"
#include "ops/shmem.h"
#include "projection/sync_format.h"
#include "shared/spi_plans.h"
#include "tick/tick.h"
#include "tick/tick_lock.h"
#include "worker.h"

/* How often the launcher re-checks a missing database or role. */
#define LAUNCHER_POLL_MS		5000
/* How often the worker re-checks a missing extension. */
#define EXTENSION_POLL_MS		2000
/* Restart delay of a dead tick worker: doubles up to the cap. */
#define RESTART_DELAY_MIN_MS	1000
#define RESTART_DELAY_MAX_MS	60000
/* A worker that lived this long resets the restart delay. */
#define HEALTHY_LIFETIME_MS		30000

/* How long the worker waits after an ERROR before it tries again. */
#define ERROR_RETRY_MS			10000

typedef struct WorkerState
{
	bool		waiting_logged; /* "extension missing" said once */
	bool		recovered;		/* unfinished tick runs marked failed */
	char		last_error[256];	/* the last ERROR reported, said once */
	int			format;			/* sync format last logged, -1: none yet */
	bool		writes_log;		/* "the role may write sync_changes" said */
} WorkerState;

typedef enum LauncherWait
{
	LW_NONE,
	LW_NO_DATABASE,
	LW_NO_ROLE,
	LW_ROLE_CANNOT_LOGIN
} LauncherWait;

PGDLLEXPORT void mana_ai_launcher_main(Datum main_arg);
PGDLLEXPORT void mana_ai_worker_main(Datum main_arg);

static LauncherWait check_database_and_role(void);
static bool database_exists(const char *name);
static void log_launcher_wait(LauncherWait wait);
static bool start_tick_worker(BackgroundWorkerHandle **handle);
static bool extension_installed(void);
static void check_sync_format(WorkerState *state);
static void check_log_write_privilege(WorkerState *state);
static const char *privilege_names(AclMode held);
static void mark_unfinished_ticks_failed(void);
static void worker_shmem_exit(int code, Datum arg);
static int	worker_cycle(MemoryContext tick_context, WorkerState *state);
static int	worker_cycle_body(MemoryContext tick_context, WorkerState *state);

void
mana_ai_worker_register(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	/* Not on a hot standby: the launcher starts once recovery is over. */
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 10;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "mana_ai");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "mana_ai_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "mana_ai launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "mana_ai launcher");
	RegisterBackgroundWorker(&worker);
}

/* ---------------------------------------------------------------- launcher */

void
mana_ai_launcher_main(Datum main_arg)
{
	BackgroundWorkerHandle *handle = NULL;
	LauncherWait last_wait = LW_NONE;
	int			restart_delay = RESTART_DELAY_MIN_MS;
	TimestampTz worker_started = 0;
	TimestampTz restart_not_before = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* Shared catalogs only: being in no database keeps every DROP DATABASE free. */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("mana_ai launcher");

	LWLockAcquire(mana_ai_shared->lock, LW_EXCLUSIVE);
	mana_ai_shared->launcher_pid = MyProcPid;
	LWLockRelease(mana_ai_shared->lock);

	ereport(LOG, (errmsg("mana_ai launcher started for database \"%s\"", mana_ai_database)));

	for (;;)
	{
		int			timeout = LAUNCHER_POLL_MS;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		if (handle != NULL)
		{
			pid_t		pid;

			if (GetBackgroundWorkerPid(handle, &pid) == BGWH_STOPPED)
			{
				TimestampTz now = GetCurrentTimestamp();

				pfree(handle);
				handle = NULL;
				/* A worker that died young waits longer each time: no crash loop. */
				if (TimestampDifferenceExceeds(worker_started, now, HEALTHY_LIFETIME_MS))
					restart_delay = RESTART_DELAY_MIN_MS;
				else
					restart_delay = Min(restart_delay * 2, RESTART_DELAY_MAX_MS);
				restart_not_before = TimestampTzPlusMilliseconds(now, restart_delay);
				pg_atomic_write_u32(&mana_ai_shared->leave_database, 0);
			}
		}

		if (handle == NULL)
		{
			LauncherWait wait = check_database_and_role();

			if (wait != last_wait)
				log_launcher_wait(wait);
			last_wait = wait;

			if (wait == LW_NONE)
			{
				TimestampTz now = GetCurrentTimestamp();

				if (now >= restart_not_before)
				{
					if (start_tick_worker(&handle))
						worker_started = now;
					else
						restart_not_before = TimestampTzPlusMilliseconds(now, restart_delay);
				}
				else
				{
					long		ms = TimestampDifferenceMilliseconds(now, restart_not_before);

					timeout = (int) Min(ms + 1, (long) timeout);
				}
			}
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * Connected to no database, the launcher can scan pg_database only
 * sequentially, as the autovacuum launcher does.
 */
static bool
database_exists(const char *name)
{
	Relation	rel = table_open(DatabaseRelationId, AccessShareLock);
	TableScanDesc scan = table_beginscan_catalog(rel, 0, NULL);
	HeapTuple	tuple;
	bool		found = false;

	while (!found && HeapTupleIsValid(tuple = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tuple);

		found = strcmp(NameStr(db->datname), name) == 0 && !database_is_invalid_form(db);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/* Look the database and role up in the shared catalogs. */
static LauncherWait
check_database_and_role(void)
{
	LauncherWait result = LW_NONE;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (!database_exists(mana_ai_database))
		result = LW_NO_DATABASE;
	else if (mana_ai_role != NULL && mana_ai_role[0] != '\0')
	{
		HeapTuple	tuple = SearchSysCache1(AUTHNAME, CStringGetDatum(mana_ai_role));

		if (!HeapTupleIsValid(tuple))
			result = LW_NO_ROLE;
		else
		{
			if (!((Form_pg_authid) GETSTRUCT(tuple))->rolcanlogin)
				result = LW_ROLE_CANNOT_LOGIN;
			ReleaseSysCache(tuple);
		}
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	return result;
}

/* One LOG line per change of what the launcher waits for. */
static void
log_launcher_wait(LauncherWait wait)
{
	switch (wait)
	{
		case LW_NONE:
			ereport(LOG, (errmsg("mana_ai launcher: database \"%s\" is ready, starting the worker",
								 mana_ai_database)));
			break;
		case LW_NO_DATABASE:
			ereport(LOG, (errmsg("mana_ai launcher: database \"%s\" does not exist, waiting for it",
								 mana_ai_database),
						  errhint("Create the database or set mana_ai.database and restart the server.")));
			break;
		case LW_NO_ROLE:
			ereport(LOG, (errmsg("mana_ai launcher: role \"%s\" does not exist, waiting for it",
								 mana_ai_role),
						  errhint("Create the role named by mana_ai.role.")));
			break;
		case LW_ROLE_CANNOT_LOGIN:
			ereport(LOG, (errmsg("mana_ai launcher: role \"%s\" cannot log in, waiting",
								 mana_ai_role),
						  errhint("ALTER ROLE %s LOGIN;", mana_ai_role)));
			break;
	}
}

static bool
start_tick_worker(BackgroundWorkerHandle **handle)
{
	BackgroundWorker worker;
	pid_t		pid;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;	/* the launcher decides */
	worker.bgw_notify_pid = MyProcPid;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "mana_ai");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "mana_ai_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "mana_ai worker");
	snprintf(worker.bgw_type, BGW_MAXLEN, "mana_ai worker");

	if (!RegisterDynamicBackgroundWorker(&worker, handle))
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("mana_ai launcher could not start the worker"),
				 errhint("Raise max_worker_processes.")));
		*handle = NULL;
		return false;
	}
	if (WaitForBackgroundWorkerStartup(*handle, &pid) != BGWH_STARTED)
	{
		pfree(*handle);
		*handle = NULL;
		return false;
	}
	return true;
}

/* ------------------------------------------------------------------ worker */

void
mana_ai_worker_main(Datum main_arg)
{
	const char *role = (mana_ai_role != NULL && mana_ai_role[0] != '\0') ? mana_ai_role : NULL;
	WorkerState state = {false, false, "", -1, false};
	MemoryContext tick_context;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(mana_ai_database, role, 0);
	pgstat_report_appname("mana_ai worker");

	/*
	 * Every statement the worker runs resolves names through pg_catalog
	 * first, whatever ALTER DATABASE / ALTER ROLE ... SET search_path says:
	 * a schema the role can be given objects in must not replace a
	 * built-in function or operator (CVE-2018-1058), as autovacuum and the
	 * logical replication workers do.  PGC_S_OVERRIDE: no reload changes it.
	 */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

	LWLockAcquire(mana_ai_shared->lock, LW_EXCLUSIVE);
	mana_ai_shared->worker_pid = MyProcPid;
	mana_ai_shared->worker_started_at = GetCurrentTimestamp();
	LWLockRelease(mana_ai_shared->lock);
	before_shmem_exit(worker_shmem_exit, (Datum) 0);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	ereport(LOG, (errmsg("mana_ai worker started in database \"%s\" as role \"%s\"",
						 mana_ai_database, GetUserNameFromId(GetUserId(), false))));
	CommitTransactionCommand();
	if (role == NULL)
		ereport(WARNING,
				(errmsg("mana_ai worker runs as the bootstrap superuser, which bypasses row-level security"),
				 errhint("Set mana_ai.role to a dedicated role without BYPASSRLS.")));

	tick_context = AllocSetContextCreate(TopMemoryContext, "mana_ai tick",
										 ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		int			timeout_ms;

		CHECK_FOR_INTERRUPTS();
		if (pg_atomic_read_u32(&mana_ai_shared->leave_database) != 0)
			proc_exit(0);
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		timeout_ms = worker_cycle(tick_context, &state);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * One pass of the worker loop: wait for the extension, recover after a
 * crash, tick.  An ERROR (a missing privilege, a broken fixture) is
 * reported once per distinct message and retried after a pause: the
 * worker never exits on it, so there is no crash loop.
 */
static int
worker_cycle(MemoryContext tick_context, WorkerState *state)
{
	int			timeout_ms = EXTENSION_POLL_MS;
	MemoryContext caller = CurrentMemoryContext;

	PG_TRY();
	{
		timeout_ms = worker_cycle_body(tick_context, state);
		state->last_error[0] = '\0';
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(caller);
		edata = CopyErrorData();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		/*
		 * The tick lock is the only session-level lock the worker takes; an
		 * error before the tick's own cleanup could run (say its run row
		 * could not be inserted) must not leave it held, or every SQL tick
		 * would be skipped as an overlap from then on.
		 */
		tick_lock_release_after_error();
		MemoryContextReset(tick_context);
		if (strcmp(state->last_error, edata->message) != 0)
		{
			ereport(LOG,
					(errmsg("mana_ai worker: %s", edata->message),
					 edata->detail ? errdetail_internal("%s", edata->detail) : 0,
					 edata->sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE ?
					 errhint("The worker retries every %d s; see the README for the privileges its role needs.",
							 ERROR_RETRY_MS / 1000) :
					 edata->hint ?
					 errhint("%s The worker retries every %d s.", edata->hint, ERROR_RETRY_MS / 1000) :
					 errhint("The worker retries every %d s.", ERROR_RETRY_MS / 1000)));
			strlcpy(state->last_error, edata->message, sizeof(state->last_error));
		}
		FreeErrorData(edata);
		pgstat_report_activity(STATE_IDLE, "waiting after an error");
		timeout_ms = ERROR_RETRY_MS;
	}
	PG_END_TRY();
	return timeout_ms;
}

static int
worker_cycle_body(MemoryContext tick_context, WorkerState *state)
{
	int			timeout_ms;

	if (!extension_installed())
	{
		if (!state->waiting_logged)
			ereport(LOG,
					(errmsg("mana_ai worker: extension \"mana_ai\" is not installed in database \"%s\", waiting",
							mana_ai_database),
					 errhint("Run CREATE EXTENSION mana_ai; in that database.")));
		state->waiting_logged = true;
		state->recovered = false;
		LWLockAcquire(mana_ai_shared->lock, LW_EXCLUSIVE);
		mana_ai_shared->extension_missing = true;
		LWLockRelease(mana_ai_shared->lock);
		pgstat_report_activity(STATE_IDLE, "waiting for CREATE EXTENSION mana_ai");
		timeout_ms = EXTENSION_POLL_MS;
	}
	else
	{
		if (state->waiting_logged)
			ereport(LOG, (errmsg("mana_ai worker: extension \"mana_ai\" found, starting to tick")));
		state->waiting_logged = false;
		LWLockAcquire(mana_ai_shared->lock, LW_EXCLUSIVE);
		mana_ai_shared->extension_missing = false;
		LWLockRelease(mana_ai_shared->lock);

		if (!state->recovered)
		{
			mark_unfinished_ticks_failed();
			state->recovered = true;
		}

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		check_sync_format(state);
		check_log_write_privilege(state);
		CommitTransactionCommand();
		timeout_ms = mana_ai_worker_tick_cycle(tick_context);
	}
	return timeout_ms;
}

static void
worker_shmem_exit(int code, Datum arg)
{
	LWLockAcquire(mana_ai_shared->lock, LW_EXCLUSIVE);
	if (mana_ai_shared->worker_pid == MyProcPid)
	{
		mana_ai_shared->worker_pid = 0;
		mana_ai_shared->next_tick_at = 0;
	}
	LWLockRelease(mana_ai_shared->lock);
}

static bool
extension_installed(void)
{
	bool		found;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	found = OidIsValid(get_extension_oid("mana_ai", true));
	CommitTransactionCommand();
	return found;
}

/*
 * Before every tick (in the caller's transaction): which sync_changes
 * format the database has now (sync_format.c), said in the log when it
 * is first seen or changes (a migration in place).  A table that matches
 * neither raises here, before a tick run is opened, and worker_cycle says
 * so once and waits.
 */
static void
check_sync_format(WorkerState *state)
{
	SyncFormat	format = mana_ai_sync_format();

	if ((int) format != state->format)
		ereport(LOG,
				(errmsg("mana_ai worker: public.sync_changes is in the %s sync format",
						format == SYNC_FORMAT_CURRENT ? "current (field_meta)" : "seed (field_timestamps)")));
	state->format = (int) format;
}

/* "INSERT, UPDATE" and the like: the write privileges in held. */
static const char *
privilege_names(AclMode held)
{
	StringInfoData names;

	initStringInfo(&names);
	if (held & ACL_INSERT)
		appendStringInfoString(&names, "INSERT");
	if (held & ACL_UPDATE)
		appendStringInfo(&names, "%sUPDATE", names.len > 0 ? ", " : "");
	if (held & ACL_DELETE)
		appendStringInfo(&names, "%sDELETE", names.len > 0 ? ", " : "");
	return names.data;
}

/*
 * Before every tick (in the caller's transaction): whether the worker's
 * role can still write public.sync_changes itself.  Since 0.3.0 the tick
 * appends only through mana_ai.append_runner_iteration(); a role that can
 * INSERT rows can give a granted mission an objective of its own (issue
 * 19, README "Threat model").  The extension cannot revoke a grant on the
 * sync server's table, and an upgrade from 0.2.0 leaves it in place, so
 * the worker says so (a WARNING when it is first seen, a LOG when it is
 * gone).  The bootstrap superuser has its own warning at start.
 */
static void
check_log_write_privilege(WorkerState *state)
{
	Oid			relid = mana_ai_sync_changes_relid();
	AclMode		held = 0;
	const char *role;

	if (OidIsValid(relid) && !superuser())
		held = pg_class_aclmask(relid, GetUserId(), ACL_INSERT | ACL_UPDATE | ACL_DELETE,
								ACLMASK_ALL);
	if ((held != 0) == state->writes_log)
		return;					/* nothing new to say */
	role = quote_identifier(GetUserNameFromId(GetUserId(), false));
	if (held != 0)
		ereport(WARNING,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("mana_ai worker: role %s may write public.sync_changes (%s)", role,
						privilege_names(held)),
				 errdetail("The tick writes only through mana_ai.append_runner_iteration(); a role that can write the log "
						   "itself can give a granted mission an instruction of its own."),
				 errhint("REVOKE INSERT, UPDATE, DELETE ON public.sync_changes FROM %s;", role)));
	else
		ereport(LOG,
				(errmsg("mana_ai worker: role %s no longer writes public.sync_changes", role)));
	state->writes_log = held != 0;
}

/*
 * Like pg_cron at start: runs a crash left open are failed, not running.
 * A run is live while its backend holds the tick lock (an ExclusiveLock
 * on relation mana_ai.tick_lock in pg_locks; tick_lock.c): pg_locks shows
 * every role's locks, and no SQL statement can take that lock, whereas
 * pg_stat_activity hides another role's backend_start, so a test on that
 * alone took a live tick of another role for a dead one.  A backend that
 * visibly started after the run only reuses the pid of the dead one.
 */
static void
mark_unfinished_ticks_failed(void)
{
	int			ret;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	mana_ai_spi_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "mana_ai: marking unfinished tick runs failed");
	ret = SPI_execute("UPDATE mana_ai.tick_runs"
					  "   SET status = 'failed', finished_at = clock_timestamp(),"
					  "       errors = errors || '[\"server restarted\"]'::jsonb"
					  " WHERE status = 'running'"
					  "   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l"
					  "                    WHERE l.locktype = 'relation' AND l.granted"
					  "                      AND l.pid = tick_runs.backend_pid"
					  "                      AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d"
					  "                                         WHERE d.datname = current_database())"
					  "                      AND l.relation = pg_catalog.to_regclass('mana_ai.tick_lock')"
					  "                      AND l.mode = 'ExclusiveLock'"
					  "                      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a"
					  "                                       WHERE a.pid = l.pid"
					  "                                         AND a.backend_start > tick_runs.started_at))",
					  false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "mana_ai: marking unfinished tick runs failed: %s", SPI_result_code_string(ret));
	if (SPI_processed > 0)
		ereport(LOG, (errmsg("mana_ai worker marked %llu unfinished tick run(s) as failed",
							 (unsigned long long) SPI_processed)));
	mana_ai_spi_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
}
