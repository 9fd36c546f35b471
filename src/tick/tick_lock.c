/*
 * tick_lock.c: the tick lock.
 *
 * One tick per database.  Before 0.3.0 the tick lock was an advisory lock
 * on a fixed key, which any login can take, so any login could make every
 * tick overlap-skipped.  Now it is an exclusive lock whose tag is the
 * relation mana_ai.tick_lock (a table that never holds a row) in
 * PostgreSQL's user lock method: pg_locks shows it as an ExclusiveLock on
 * that relation, held by the tick's pid, but no SQL statement can take it
 * (LOCK TABLE uses the default lock method, pg_advisory_lock the advisory
 * tags), only this file: the tick, and mana_ai.hold_tick_lock() (granted
 * to nobody).  Session-level in the worker, whose tick spans many
 * transactions (the user lock method keeps it across an abort, where a
 * default-method session lock would be dropped); transaction-level from
 * SQL.  A holder shows in pg_locks with its pid, which is how the worker
 * tells a live run from one a crash left (worker.c).  The refresh's own
 * locks are snapshot_refresh.c's.  Must never wait without bound, and
 * never leave the worker's session lock held after its tick.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/lsyscache.h"

#include "tick/tick_internal.h"
#include "tick/tick_lock.h"

/* The worker's session-level hold, if any (released by tick_lock_release). */
static bool session_held = false;
static LOCKTAG session_tag;

/*
 * The lock's tag (always taken ExclusiveLock).  Until ALTER EXTENSION
 * mana_ai UPDATE has created mana_ai.tick_lock, the advisory lock
 * (1835101793, 100) of 0.2.0, so an old schema under the new library still
 * ticks one at a time.
 */
static void
tick_lock_tag(LOCKTAG *tag)
{
	Oid			nsp = get_namespace_oid("mana_ai", false);
	Oid			rel = get_relname_relid("tick_lock", nsp);

	if (!OidIsValid(rel))
	{
		SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, 1835101793, 100, 2);
		return;
	}
	SET_LOCKTAG_RELATION(*tag, MyDatabaseId, rel);
	tag->locktag_lockmethodid = USER_LOCKMETHOD;	/* out of SQL's reach */
}

/* Take the tick lock; wait (bounded by lock_timeout) or not. */
static bool
tick_lock_take(bool session, bool wait)
{
	LOCKTAG		tag;
	LockAcquireResult res;

	if (session && session_held)
		return true;
	tick_lock_tag(&tag);
	res = LockAcquire(&tag, ExclusiveLock, session, !wait);
	if (res == LOCKACQUIRE_NOT_AVAIL)
		return false;
	if (session)
	{
		session_held = true;
		session_tag = tag;
	}
	return true;
}

/* One tick per database: a try, never a wait. */
bool
tick_lock_try(TickMode mode)
{
	return tick_lock_take(mode == TICK_WORKER, false);
}

/* The worker's session lock; from SQL the caller's transaction ends it. */
void
tick_lock_release(void)
{
	if (!session_held)
		return;
	session_held = false;
	if (!LockRelease(&session_tag, ExclusiveLock, true))
		elog(WARNING, "mana_ai: the tick lock was not held");
}

/* After an error: whatever the worker's tick held, let it go. */
void
tick_lock_release_after_error(void)
{
	session_held = false;
	LockReleaseSession(USER_LOCKMETHOD);
}

/*
 * SELECT mana_ai.hold_tick_lock(): take the tick lock for this session,
 * waiting for a tick in progress (bounded by the caller's lock_timeout or
 * statement_timeout), so no tick runs until mana_ai.release_tick_lock()
 * or the session ends.  For a move between shards and for tests; granted
 * to nobody (superusers, or whom a superuser grants it).
 */
PG_FUNCTION_INFO_V1(mana_ai_hold_tick_lock);
Datum
mana_ai_hold_tick_lock(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(tick_lock_take(true, true));
}

PG_FUNCTION_INFO_V1(mana_ai_release_tick_lock);
Datum
mana_ai_release_tick_lock(PG_FUNCTION_ARGS)
{
	bool		held = session_held;

	tick_lock_release();
	PG_RETURN_BOOL(held);
}
