/*
 * drop_database.c: the object-access hook that makes the tick worker
 * leave a database being dropped.
 *
 * DROP DATABASE waits a few seconds for other sessions to leave before it
 * gives up; the hook, installed in every backend when the library is
 * preloaded, tells the tick worker to go so it never blocks the drop.
 * The launcher restarts it only once the database exists again.  A drop
 * that is bound to fail (another session or background worker in the
 * database, an active logical slot, a subscription, a template) does not
 * send it away: the hook runs before those checks, and a worker killed for
 * a drop that then fails lost its tick for nothing.  Owns nothing but that
 * signal; must never do work of its own in the dropping backend beyond
 * these read-only checks, a shared-memory flag and a SIGTERM.
 */
#include "postgres.h"

#include <signal.h>

#include "catalog/objectaccess.h"
#include "access/htup_details.h"
#include "catalog/pg_database.h"
#include "catalog/pg_subscription.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "replication/slot.h"
#include "storage/lwlock.h"
#include "utils/backend_status.h"
#include "utils/syscache.h"

#include "ops/drop_database.h"
#include "ops/guc.h"
#include "ops/shmem.h"
#include "shared/pg_compat.h"

static object_access_hook_type prev_object_access_hook = NULL;

/*
 * Whether dropdb() will refuse this database after the hook: the checks it
 * makes next, in its order.  Autovacuum workers do not count (dropdb ends
 * them); prepared transactions are not seen here (the worker then leaves
 * and the launcher starts it again).
 */
static bool
drop_will_fail(Oid dbid, pid_t worker_pid)
{
	HeapTuple	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dbid));
	bool		is_template = false;
	int			nslots = 0;
	int			nactive = 0;
	int			n;

	if (HeapTupleIsValid(tup))
	{
		is_template = ((Form_pg_database) GETSTRUCT(tup))->datistemplate;
		ReleaseSysCache(tup);
	}
	if (is_template || dbid == MyDatabaseId)
		return true;
	(void) ReplicationSlotsCountDBSlots(dbid, &nslots, &nactive);
	if (nactive > 0 || CountDBSubscriptions(dbid) > 0)
		return true;
	pgstat_clear_backend_activity_snapshot();	/* a fresh look, not this xact's */
	n = pgstat_fetch_stat_numbackends();
	for (int i = 1; i <= n; i++)
	{
		LocalPgBackendStatus *local = mana_local_beentry(i);
		PgBackendStatus *be = local ? &local->backendStatus : NULL;

		if (be != NULL && be->st_procpid > 0 && be->st_databaseid == dbid &&
			be->st_procpid != worker_pid && be->st_procpid != MyProcPid &&
			be->st_backendType != B_AUTOVAC_WORKER)
			return true;
	}
	return false;
}

/* A DROP DATABASE of the worker's database that can succeed asks the worker to leave. */
static void
on_drop_database(ObjectAccessType access, Oid classId, Oid objectId,
				 int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);

	if (access == OAT_DROP && classId == DatabaseRelationId &&
		mana_ai_shared != NULL && mana_ai_database != NULL &&
		objectId == get_database_oid(mana_ai_database, true))
	{
		pid_t		pid;

		LWLockAcquire(mana_ai_shared->lock, LW_SHARED);
		pid = mana_ai_shared->worker_pid;
		LWLockRelease(mana_ai_shared->lock);
		if (drop_will_fail(objectId, pid))
			return;
		pg_atomic_write_u32(&mana_ai_shared->leave_database, 1);
		if (pid != 0)
			kill(pid, SIGTERM);
	}
}

void
mana_ai_drop_database_hook_install(void)
{
	prev_object_access_hook = object_access_hook;
	object_access_hook = on_drop_database;
}
