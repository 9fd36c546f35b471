/*
 * tick_stream.c: a tick's LLM phase, with each mission's write-back
 * streamed in the worker (issue 20): a mission whose conversation has
 * ended joins the pending batch at once, and the batch is written back
 * and committed between two waits of the loop when it holds
 * mana_ai.writeback_batch_size missions or its oldest plan has waited
 * mana_ai.writeback_batch_time, while the other calls stay in flight.
 * What is left pending when the last call ends is committed then.
 *
 * Owns the LLM phase's orchestration: which mission is written back
 * when.  The write itself is tick_settle.c's (settle_mission, the same
 * subtransaction per mission), the batch tick_batch.c's.
 * Must never leave a transaction open when it gives control back to the
 * loop (no transaction across a wait on the network): a flush opens,
 * fills and commits its batches before it returns.  From SQL (the
 * caller's transaction, which commits nothing before the caller does)
 * nothing is streamed: the calls all end, then the write-back phase runs
 * as before.
 */
#include "postgres.h"

#include <math.h>

#include "miscadmin.h"
#include "pgstat.h"

#include "ops/guc.h"
#include "planner/llm.h"
#include "tick/tick_internal.h"

typedef struct Stream
{
	Tick	   *t;
	LlmCall    *calls;
	Job		  **jobs;			/* the job of each call */
	List	   *pending;		/* Job *: ended, not yet written back */
	double		oldest;			/* answered_at of pending's first */
} Stream;

/* Write back and commit every pending mission, now. */
static void
flush(Stream *s)
{
	Tick	   *t = s->t;
	ListCell   *lc;

	if (s->pending == NIL)
		return;
	tick_phase_done(t, TP_LLM);
	pgstat_report_activity(STATE_RUNNING, "mana_ai tick: writing back");
	foreach(lc, s->pending)
	{
		Job		   *job = (Job *) lfirst(lc);

		CHECK_FOR_INTERRUPTS();
		tick_batch_open(t);
		tick_settle_mission(t, job);
		tick_batch_settled(t, job);	/* commits it when it is full */
	}
	tick_batch_close(t);		/* nothing open across the next wait */
	list_free(s->pending);
	s->pending = NIL;
	pgstat_report_activity(STATE_RUNNING, "mana_ai tick: waiting for the LLM");
	tick_phase_done(t, TP_WRITEBACK);
}

/* A call has ended: its mission joins the pending batch. */
static void
take(Stream *s, int i)
{
	Job		   *job = s->jobs[i];

	*job->call = s->calls[i];
	job->streamed = true;
	if (s->pending == NIL)
		s->oldest = job->call->answered_at;
	s->pending = lappend(s->pending, job);
}

/* LlmFinishedFn: between two waits of the loop. */
static int
on_finished(void *arg, const int *done, int k)
{
	Stream	   *s = (Stream *) arg;
	double		waited_ms;

	for (int j = 0; j < k; j++)
		take(s, done[j]);
	if (s->pending == NIL)
		return -1;
	waited_ms = (mana_ai_llm_now() - s->oldest) * 1000.0;
	if (list_length(s->pending) >= mana_ai_writeback_batch_size ||
		waited_ms >= mana_ai_writeback_batch_time)
	{
		flush(s);
		return -1;
	}
	/* wake up when the oldest plan has waited its time */
	return (int) ceil(mana_ai_writeback_batch_time - waited_ms);
}

/*
 * The calls, or on a cancel the tokens of the rounds answered before it
 * into the jobs not yet handed over, so the failed run still counts them
 * (tick_run.c's fail_worker_run); a job written back already keeps what
 * it wrote.
 */
static void
complete_calls(Tick *t, Stream *s, int n)
{
	PG_TRY();
	{
		mana_ai_llm_complete_stream(s->calls, n, t->protocol,
									t->mode == TICK_WORKER ? on_finished : NULL, s);
	}
	PG_CATCH();
	{
		for (int i = 0; i < n; i++)
			s->jobs[i]->call->total_tokens = s->calls[i].total_tokens;
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/*
 * Every prepared mission's planner conversation at once, all rounds in
 * one multi handle; in the worker no transaction is open here, and each
 * mission is written back as above (job->streamed), so the write-back
 * phase is left with the missions that never reached the LLM.
 */
void
tick_llm_phase(Tick *t)
{
	Stream		s;
	int			n = 0;
	ListCell   *lc;

	foreach(lc, t->jobs)
		if (((Job *) lfirst(lc))->prepared)
			n++;
	if (n == 0)
		return;

	memset(&s, 0, sizeof(s));
	s.t = t;
	s.calls = palloc0(sizeof(LlmCall) * n);
	s.jobs = palloc(sizeof(Job *) * n);
	n = 0;
	foreach(lc, t->jobs)
	{
		Job		   *job = (Job *) lfirst(lc);

		if (!job->prepared)
			continue;
		s.jobs[n] = job;
		s.calls[n++] = *job->call;
	}

	pgstat_report_activity(STATE_RUNNING, "mana_ai tick: waiting for the LLM");
	complete_calls(t, &s, n);

	if (t->mode == TICK_WORKER)
	{
		for (int i = 0; i < n; i++)
			if (!s.jobs[i]->streamed)
				take(&s, i);
		flush(&s);
	}
	else
		for (int i = 0; i < n; i++)
			*s.jobs[i]->call = s.calls[i];
	pgstat_report_activity(STATE_RUNNING, "mana_ai tick: writing back");
}
