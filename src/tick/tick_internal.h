/*
 * tick_internal.h: what the files of one tick share (tick_run.c and the
 * files it calls, declared below from the top down: each calls only those
 * under it).  Not for other modules: they use tick.h.
 */
#ifndef MANA_AI_TICK_INTERNAL_H
#define MANA_AI_TICK_INTERNAL_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"

#include "planner/llm.h"
#include "shared/pg_compat.h"

typedef enum TickMode
{
	TICK_SQL,					/* SELECT mana_ai_tick(): the caller's transaction */
	TICK_WORKER					/* the worker: a transaction per phase */
} TickMode;

/* A mission taken in this tick, from gate to write-back. */
typedef struct Job
{
	char	   *user_id;
	char	   *mission_id;
	char	   *slot;			/* the nextRunAt text being planned */
	char	   *agent_id;		/* principal: agent id or legacy */
	char	   *agent_name;
	bool		has_agent;		/* an agent snapshot was found */
	Jsonb	   *agent;			/* NULL for legacy missions; shared by the
								 * agent's missions, read-only */
	char		iteration_id[37];
	TimestampTz started_at;
	int			attempts_before;
	int64		token_budget;	/* the agent's tokens left at selection, -1: no limit */
	int64	   *token_pool;		/* what is left now, shared by the agent's
								 * missions of the tick (NULL: no limit) */
	bool		prepared;		/* prompt rendered, LLM call pending */
	LlmCall    *call;			/* after the LLM phase: call->model (answering
								 * model), call->total_tokens (all rounds),
								 * call->seconds (the conversation),
								 * call->rounds */
	bool		cadence_checked;	/* the cadence passed next_run_at (prepare) */
	bool		cadence_invalid;	/* it did not: fail at once, clear nextRunAt */
	bool		backoff_only;	/* last resort: save the backoff, write no row */
	char	   *fail_phase;		/* set when the mission failed */
	char	   *fail_name;
	char	   *fail_message;

	/*
	 * How the write-back ended, set by tick_writeback.c and final when
	 * tick_settle.c has settled the mission: "planned" (an
	 * iteration with the plan), "failed" (a failed iteration), "retry" (a
	 * backoff row), "stale" (the slot was no longer nextRunAt: nothing
	 * written) or "error" (nothing could be saved but the tokens).
	 */
	const char *outcome;
	/* for mana_ai.mission_runs (tick_mission_runs.c) */
	const char *decision;		/* why not taken (skipped-*, backing-off); NULL: taken */
	bool		written;		/* an iteration (plan or failed) was written */
	bool		settled;		/* its write-back ran, committed or not */
	bool		committed;		/* the batch holding its write-back committed */
	bool		streamed;		/* handed to the write-back as its call ended
								 * (tick_stream.c), not by the phase after */
	char	   *settle_error;	/* the write-back's own error (rolled back) */
	int64		token_total;	/* the agent's maxTokensPerDay, 0: none */
	char	   *step_notes;		/* steps dropped, refused or flagged (tick_steps.c) */
} Job;

/* The phases a tick times (its result's phaseMs). */
typedef enum TickPhase
{
	TP_REFRESH,
	TP_SELECT,
	TP_PREPARE,
	TP_LLM,
	TP_WRITEBACK,
	TP_COUNT
} TickPhase;

typedef struct Tick
{
	TickMode	mode;
	int			protocol;		/* mana_ai.planner_protocol, read at the start */
	MemoryContext cxt;			/* survives the phase transactions */
	MemoryContext job_cxt;		/* one mission's scratch, reset after each */
	MemoryContext write_cxt;	/* one write-back's scratch, reset before each */
	struct HTAB *prompts;		/* system prompts kept once (tick_prepare.c) */
	struct HTAB *pools;			/* token pools per (user, agent), same */
	int64		run_id;
	TimestampTz scanned_at;
	int			due;
	int			produced;
	int			written;
	int			parse_failures;
	int			failed_iterations;
	List	   *errors;			/* char * */
	List	   *jobs;			/* Job *: the missions taken */
	List	   *considered;		/* Job *: every due mission, taken or not */
	bool		batch_open;		/* a write-back batch is open (tick_batch.c) */
	List	   *batch_jobs;		/* Job *: settled in the open batch */
	int			batch_missions; /* missions settled in it */
	TimestampTz batch_started;
	double	   *commit_ms;		/* per committed plan: its last answer to its
								 * batch's commit (worker only) */
	int			n_commit_ms;
	TimestampTz phase_mark;		/* when the phase being timed began */
	double		phase_ms[TP_COUNT];
} Tick;

/* tick_stream.c: the LLM phase, each plan written back as it is ready */
extern void tick_llm_phase(Tick *t);

/* tick_prepare.c: a mission's record, grant, inputs and prompt; the agent tables */
extern bool tick_prepare_mission(Tick *t, Job *job);
extern void tick_forget_prompt(Job *job);
extern void tick_share_token_budget(Tick *t, Job *job);
extern struct HTAB *tick_agent_table(Tick *t, const char *name, Size entrysize);
extern char *tick_agent_key(const char *user_id, const char *agent_id);

/* tick_groups.c: SELECT mana_ai_tick()'s write-back, a subtransaction per group */
extern void tick_settle_grouped(Tick *t);

/* tick_batch.c: the worker's write-back batches */
extern void tick_batch_open(Tick *t);
extern void tick_batch_settled(Tick *t, Job *job);
extern void tick_batch_close(Tick *t);

/* tick_settle.c: one mission parsed and written back, or its failure backed off */
extern void tick_settle_mission(Tick *t, Job *job);
extern void tick_settle_step(Tick *t, Job *job);
extern void tick_settle_failed_batch(Tick *t, List *jobs, const char *error);
extern void tick_count_uncommitted_tokens(Tick *t);

/* tick_writeback.c: the iteration written back, the failure, the tokens */
extern bool tick_write_iteration(Tick *t, Job *job, Jsonb *plan, Jsonb *error);
extern void tick_record_failure(Tick *t, Job *job);
extern void tick_count_tokens(Tick *t, Job *job);

/* tick_steps.c: log, count and note the flagged and dropped steps. */
extern void tick_note_steps(Job *job, const char *flags_json, const char *dropped_json);

/* tick_runs.c: the tick's row in mana_ai.tick_runs and its result */
extern void tick_runs_insert(Tick *t, const char *status);
extern void tick_runs_finish(Tick *t, const char *status);
extern void tick_runs_mark_failed(int64 run_id, const char *message);
extern void tick_add_error(Tick *t, const char *fmt,...) pg_attribute_printf(2, 3);
extern void tick_phase_done(Tick *t, TickPhase phase);
extern Jsonb *tick_result(Tick *t);

/* tick_mission_runs.c: the tick's rows in mana_ai.mission_runs */
extern void tick_mission_runs_record(Tick *t, const char *tick_error);
extern void tick_mission_runs_record_quietly(Tick *t, const char *tick_error);

/* tick_xact.c: the transactions the phases run in */
extern void tick_unit_begin(Tick *t);
extern void tick_unit_commit(Tick *t);
extern char *tick_unit_try_commit(Tick *t);
extern bool tick_run_isolated(Tick *t, void (*fn) (Tick *, Job *), Job *job,
							  char **error);
extern bool tick_run_sub(Tick *t, void (*fn) (Tick *, Job *), Job *job, char **error);
extern void tick_exec(Tick *t, const char *sql, int nargs, Oid *types, Datum *values,
					  int expected, const char *what);

/* tick_lock.c: one tick per database */
extern bool tick_lock_try(TickMode mode);
extern void tick_lock_release(void);

#endif
