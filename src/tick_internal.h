/*
 * tick_internal.h: what the files of one tick share (tick_run.c,
 * tick_xact.c, tick_runs.c, tick_writeback.c).  Not for other modules:
 * they use tick.h.
 */
#ifndef MANA_AI_TICK_INTERNAL_H
#define MANA_AI_TICK_INTERNAL_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"

#include "llm.h"

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
	Jsonb	   *mission;
	Jsonb	   *agent;			/* NULL for legacy missions */
	char		iteration_id[37];
	TimestampTz started_at;
	int			attempts_before;
	int64		token_budget;	/* the agent's tokens left at selection, -1: no limit */
	bool		prepared;		/* prompt rendered, LLM call pending */
	LlmCall    *call;			/* after the LLM phase: call->model (answering
								 * model), call->total_tokens (all rounds),
								 * call->seconds (the conversation),
								 * call->rounds */
	char	   *fail_phase;		/* set when the mission failed */
	char	   *fail_name;
	char	   *fail_message;
	/* for mana_ai.mission_runs (tick_mission_runs.c) */
	const char *decision;		/* why not taken (skipped-*, backing-off); NULL: taken */
	bool		written;		/* an iteration (plan or failed) was written */
	bool		settled;		/* its write-back ran, committed or not */
	char	   *settle_error;	/* the write-back's own error (rolled back) */
} Job;

typedef struct Tick
{
	TickMode	mode;
	int			protocol;		/* mana_ai.planner_protocol, read at the start */
	MemoryContext cxt;			/* survives the phase transactions */
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
} Tick;

/* tick_xact.c: the tick lock and the transactions the phases run in */
extern bool tick_lock_try(TickMode mode);
extern void tick_lock_release(void);
extern void tick_unit_begin(Tick *t);
extern void tick_unit_commit(Tick *t);
extern bool tick_run_isolated(Tick *t, void (*fn) (Tick *, Job *), Job *job,
							  char **error);
extern void tick_fail_worker_run(Tick *t) pg_attribute_noreturn();
extern void tick_exec(Tick *t, const char *sql, int nargs, Oid *types, Datum *values,
					  int expected, const char *what);

/* tick_runs.c: the tick's row in mana_ai.tick_runs and its result */
extern void tick_runs_insert(Tick *t, const char *status);
extern void tick_runs_finish(Tick *t, const char *status);
extern void tick_runs_mark_failed(int64 run_id, const char *message);
extern void tick_add_error(Tick *t, const char *fmt,...) pg_attribute_printf(2, 3);
extern Jsonb *tick_result(Tick *t);

/* tick_mission_runs.c: the tick's rows in mana_ai.mission_runs */
extern void tick_mission_runs_record(Tick *t, const char *tick_error);
extern void tick_mission_runs_record_quietly(Tick *t, const char *tick_error);

/* tick_writeback.c: the iteration written back, or the failure backed off */
extern bool tick_write_iteration(Tick *t, Job *job, Jsonb *plan, Jsonb *error);
extern void tick_record_failure(Tick *t, Job *job);

#endif
