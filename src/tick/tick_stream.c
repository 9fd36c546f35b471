/*
 * tick_stream.c: a tick's LLM phase, with each mission's preparation and
 * (in the worker) its write-back streamed (issue 20).  The loop asks for
 * missions as it has room for them: each is prepared then (tick_prepare.c)
 * while the calls before it are in flight, so the first call leaves at
 * once and the tick holds the prompts of the missions about to be sent,
 * not of all.  A mission whose conversation has ended joins the pending
 * batch at once, and the batch is written back and committed between two
 * waits of the loop when it holds mana_ai.writeback_batch_size missions
 * or its oldest plan has waited mana_ai.writeback_batch_time, while the
 * other calls stay in flight.  What is left pending when the last call
 * ends is committed then.
 *
 * Owns the LLM phase's orchestration: which mission is prepared and
 * written back when.  The preparation is tick_prepare.c's, the write
 * tick_settle.c's (the same subtransaction per mission), the batch
 * tick_batch.c's.
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
#include "portability/instr_time.h"

#include "ops/guc.h"
#include "planner/llm.h"
#include "tick/tick_internal.h"

/* A feed stops after this long, so answers are read in between (ms). */
#define FEED_SLICE_MS 20

typedef struct Stream
{
	Tick	   *t;
	LlmCall    *calls;
	Job		  **jobs;			/* the job of each call */
	ListCell   *next_job;		/* the next taken mission to prepare */
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
	tick_forget_prompt(job);
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
 * LlmFeedFn: prepare the next taken missions, each in its own
 * transaction, until room of them are ready or FEED_SLICE_MS has passed;
 * one that fails to prepare is left for the write-back phase (its
 * failure is set) and takes no call.
 */
static int
on_feed(void *arg, int next, int room, bool *closed)
{
	Stream	   *s = (Stream *) arg;
	Tick	   *t = s->t;
	instr_time	start;
	instr_time	now;
	int			k = 0;

	INSTR_TIME_SET_CURRENT(start);
	tick_phase_done(t, TP_LLM);
	pgstat_report_activity(STATE_RUNNING, "mana_ai tick: preparing prompts");
	while (k < room && s->next_job != NULL)
	{
		Job		   *job = (Job *) lfirst(s->next_job);

		s->next_job = lnext(t->jobs, s->next_job);
		CHECK_FOR_INTERRUPTS();
		if (tick_prepare_mission(t, job))
		{
			s->jobs[next + k] = job;
			s->calls[next + k] = *job->call;
			k++;
		}
		INSTR_TIME_SET_CURRENT(now);
		INSTR_TIME_SUBTRACT(now, start);
		if (INSTR_TIME_GET_MILLISEC(now) >= FEED_SLICE_MS)
			break;
	}
	*closed = s->next_job == NULL;
	tick_phase_done(t, TP_PREPARE);
	pgstat_report_activity(STATE_RUNNING, "mana_ai tick: waiting for the LLM");
	return k;
}

/*
 * The calls, or on a cancel the tokens of the rounds answered before it
 * into the jobs not yet handed over, so the failed run still counts them
 * (tick_run.c's fail_worker_run); a job written back already keeps what
 * it wrote.
 */
static void
complete_calls(Tick *t, Stream *s, int capacity, int *fed)
{
	LlmStreamHooks hooks = {
		.finished = t->mode == TICK_WORKER ? on_finished : NULL,
		.feed = on_feed,
		.arg = s,
	};

	PG_TRY();
	{
		mana_ai_llm_complete_stream(s->calls, capacity, t->protocol, &hooks);
	}
	PG_CATCH();
	{
		for (int i = 0; i < capacity && s->jobs[i] != NULL; i++)
			s->jobs[i]->call->total_tokens = s->calls[i].total_tokens;
		PG_RE_THROW();
	}
	PG_END_TRY();
	*fed = 0;
	while (*fed < capacity && s->jobs[*fed] != NULL)
		(*fed)++;
}

/*
 * Every taken mission prepared and its planner conversation held, all
 * rounds in one multi handle; in the worker no transaction is open across
 * a wait, and each mission is written back as above (job->streamed), so
 * the write-back phase is left with the missions that never reached the
 * LLM.
 */
void
tick_llm_phase(Tick *t)
{
	Stream		s;
	int			capacity = list_length(t->jobs);
	int			n;

	if (capacity == 0)
		return;

	memset(&s, 0, sizeof(s));
	s.t = t;
	s.calls = palloc0(sizeof(LlmCall) * capacity);
	s.jobs = palloc0(sizeof(Job *) * capacity);
	s.next_job = list_head(t->jobs);

	complete_calls(t, &s, capacity, &n);

	if (t->mode == TICK_WORKER)
	{
		for (int i = 0; i < n; i++)
			if (!s.jobs[i]->streamed)
				take(&s, i);
		flush(&s);
	}
	else
		for (int i = 0; i < n; i++)
		{
			*s.jobs[i]->call = s.calls[i];
			tick_forget_prompt(s.jobs[i]);
		}
	pgstat_report_activity(STATE_RUNNING, "mana_ai tick: writing back");
}
