/*
 * tick_cycle.c: when the worker ticks, and retention between ticks.
 *
 * Owns the worker's tick cadence (mana_ai.tick_interval, pause through
 * mana_ai.enabled, never on a standby) and the shared status the status
 * view reads.  Must never hold a transaction open while it waits.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "ops/guc.h"
#include "ops/shmem.h"
#include "tick/retention.h"
#include "tick/tick.h"

static TimestampTz next_tick_at = 0;
static TimestampTz last_retention_at = 0;

/* Retention at most every ten minutes, in its own short transaction. */
static void
run_retention_if_due(TimestampTz now)
{
	if (last_retention_at != 0 &&
		!TimestampDifferenceExceeds(last_retention_at, now, 10 * 60 * 1000))
		return;
	pgstat_report_activity(STATE_RUNNING, "mana_ai retention");
	SetCurrentStatementStartTimestamp();	/* else now() is stale here */
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	mana_ai_run_retention();
	PopActiveSnapshot();
	CommitTransactionCommand();
	last_retention_at = now;
}

int
mana_ai_worker_tick_cycle(MemoryContext tick_context)
{
	TimestampTz now = GetCurrentTimestamp();
	long		sleep_ms;

	if (!mana_ai_enabled || RecoveryInProgress())
	{
		next_tick_at = 0;
		LWLockAcquire(mana_ai_shared->lock, LW_EXCLUSIVE);
		mana_ai_shared->next_tick_at = 0;
		LWLockRelease(mana_ai_shared->lock);
		pgstat_report_activity(STATE_IDLE, mana_ai_enabled ? "in recovery, not ticking"
							   : "paused (mana_ai.enabled = off)");
		return 1000;
	}

	if (next_tick_at == 0)
		next_tick_at = now;
	/* A shorter interval after a reload applies at once. */
	if (next_tick_at > TimestampTzPlusMilliseconds(now, mana_ai_tick_interval * 1000L))
		next_tick_at = TimestampTzPlusMilliseconds(now, mana_ai_tick_interval * 1000L);

	if (now >= next_tick_at)
	{
		MemoryContext old = MemoryContextSwitchTo(tick_context);

		LWLockAcquire(mana_ai_shared->lock, LW_EXCLUSIVE);
		mana_ai_shared->last_tick_started_at = now;
		LWLockRelease(mana_ai_shared->lock);

		pgstat_report_activity(STATE_RUNNING, "mana_ai tick");
		mana_ai_worker_run_tick(tick_context);
		run_retention_if_due(now);
		pgstat_report_activity(STATE_IDLE, NULL);

		MemoryContextSwitchTo(old);
		MemoryContextReset(tick_context);

		now = GetCurrentTimestamp();
		LWLockAcquire(mana_ai_shared->lock, LW_EXCLUSIVE);
		mana_ai_shared->last_tick_finished_at = now;
		LWLockRelease(mana_ai_shared->lock);
		/* Cadence from the start of the tick, never a burst to catch up. */
		next_tick_at = TimestampTzPlusMilliseconds(next_tick_at, mana_ai_tick_interval * 1000L);
		if (next_tick_at <= now)
			next_tick_at = TimestampTzPlusMilliseconds(now, mana_ai_tick_interval * 1000L);
	}

	LWLockAcquire(mana_ai_shared->lock, LW_EXCLUSIVE);
	mana_ai_shared->next_tick_at = next_tick_at;
	LWLockRelease(mana_ai_shared->lock);

	sleep_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next_tick_at);
	return (int) Max(Min(sleep_ms, 60000L), 10L);
}
