/*
 * tick_groups.c: the write-back of SELECT mana_ai_tick() in groups, so
 * that one tick in the caller's transaction stays within the
 * subtransaction cache (PGPROC_MAX_CACHED_SUBXIDS, 64).
 *
 * Every subtransaction that writes takes a transaction id, and a released
 * (committed) one keeps it in the backend's cache until the top-level
 * transaction ends; past 64 every other session's snapshot overflows and
 * reads pg_subtrans.  A subtransaction per mission (the worker's way,
 * where each batch commits) gave 1,001 ids at 1,000 missions.  Here a
 * group of missions shares one subtransaction: about 32 groups whatever
 * the count.  When a group raises, it is undone (its ids leave the cache)
 * and its two halves are tried again, down to one mission, which takes
 * settle_mission's own failure ladder; so a failing mission still undoes
 * only its own work.  Owns only that grouping; must never settle a
 * mission twice (a replayed group starts from the state before it) and
 * never swallow a query cancel (tick_run_sub re-throws it).
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/snapmgr.h"

#include "tick/tick_internal.h"

/* About this many groups per tick: well under 64 ids with the run's own rows. */
#define GROUPS_PER_TICK 32
#define MIN_GROUP 8

/* The group tick_run_sub is running (its Job argument is unused). */
static Job **group_jobs;
static int	group_n;

/* Every mission of the group, each with a snapshot of its own (see run_guarded). */
static void
settle_group(Tick *t, Job *unused)
{
	for (int i = 0; i < group_n; i++)
	{
		Job		   *job = group_jobs[i];

		CHECK_FOR_INTERRUPTS();
		job->outcome = NULL;
		job->settled = true;
		PushActiveSnapshot(GetTransactionSnapshot());
		tick_settle_step(t, job);
		PopActiveSnapshot();
	}
}

/* What a group changes outside the database, to start a replay from. */
typedef struct GroupState
{
	int			produced;
	int			written;
	int			parse_failures;
	int			failed_iterations;
	int			n_errors;
	Job		   *jobs;			/* copies */
} GroupState;

static void
save_state(Tick *t, Job **jobs, int n, GroupState *s)
{
	s->produced = t->produced;
	s->written = t->written;
	s->parse_failures = t->parse_failures;
	s->failed_iterations = t->failed_iterations;
	s->n_errors = list_length(t->errors);
	s->jobs = palloc(sizeof(Job) * n);
	for (int i = 0; i < n; i++)
		s->jobs[i] = *jobs[i];
}

/* Back to before the group; a mission error it counted stays counted (shared memory). */
static void
restore_state(Tick *t, Job **jobs, int n, GroupState *s)
{
	t->produced = s->produced;
	t->written = s->written;
	t->parse_failures = s->parse_failures;
	t->failed_iterations = s->failed_iterations;
	if (list_length(t->errors) > s->n_errors)
		t->errors = list_truncate(t->errors, s->n_errors);
	for (int i = 0; i < n; i++)
		*jobs[i] = s->jobs[i];
	pfree(s->jobs);
}

static void
settle_range(Tick *t, Job **jobs, int n)
{
	GroupState	s;
	char	   *error = NULL;

	if (n <= 0)
		return;
	if (n == 1)
	{
		tick_settle_mission(t, jobs[0]);
		return;
	}
	save_state(t, jobs, n, &s);
	group_jobs = jobs;
	group_n = n;
	if (tick_run_sub(t, settle_group, jobs[0], &error))
	{
		pfree(s.jobs);
		return;
	}
	restore_state(t, jobs, n, &s);
	settle_range(t, jobs, n / 2);
	settle_range(t, jobs + n / 2, n - n / 2);
}

/* SELECT mana_ai_tick()'s write-back phase: every mission taken, in groups. */
void
tick_settle_grouped(Tick *t)
{
	int			n = list_length(t->jobs);
	int			size = Max(MIN_GROUP, (n + GROUPS_PER_TICK - 1) / GROUPS_PER_TICK);
	Job		  **jobs = palloc(sizeof(Job *) * Max(n, 1));
	int			i = 0;
	ListCell   *lc;

	foreach(lc, t->jobs)
		jobs[i++] = (Job *) lfirst(lc);
	for (int lo = 0; lo < n; lo += size)
		settle_range(t, jobs + lo, Min(size, n - lo));
	for (i = 0; i < n; i++)
		jobs[i]->committed = true;	/* with the caller's transaction */
	pfree(jobs);
}
