/*
 * drop_database.c: the object-access hook that makes the tick worker
 * leave a database being dropped.
 *
 * DROP DATABASE waits a few seconds for other sessions to leave before it
 * gives up; the hook, installed in every backend when the library is
 * preloaded, tells the tick worker to go so it never blocks the drop.
 * The launcher restarts it only once the database exists again.  Owns
 * nothing but that signal; must never do work of its own in the dropping
 * backend beyond a shared-memory flag and a SIGTERM.
 */
#include "postgres.h"

#include <signal.h>

#include "catalog/objectaccess.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "storage/lwlock.h"

#include "guc.h"
#include "mana_ai.h"
#include "shmem.h"

static object_access_hook_type prev_object_access_hook = NULL;

/* A DROP DATABASE of the worker's database asks the worker to leave. */
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
