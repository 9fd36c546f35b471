/*
 * tick_prepare.c: one taken mission made ready for its LLM call (SPEC
 * 4.5-4.7): its record read, its cadence tried, its grant unwrapped, its
 * inputs resolved and its prompt rendered, in a transaction of its own in
 * the worker (a subtransaction from SQL).  tick_stream.c calls it as the
 * LLM loop asks for more, so a tick holds the records and prompts of the
 * missions about to be sent, not of every due mission at once.
 *
 * Owns the tables keyed by (user, agent) a tick shares between missions:
 * the system prompts kept once, the agents' token pools.  Must never keep
 * a mission's record, inputs or plaintext beyond its preparation (they
 * live in the mission's scratch memory, reset after it), and never an MDK
 * (the resolvers wipe it).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "crypto/resolvers.h"
#include "ops/guc.h"
#include "planner/planner.h"
#include "shared/jsonb_members.h"
#include "shared/spi_plans.h"
#include "tick/schedule.h"
#include "tick/tick_internal.h"

/* The token budget left to an agent's missions in this tick. */
typedef struct AgentPool
{
	char	   *key;
	int64		tokens_left;
} AgentPool;

static const char *const RECORD_SQL =
"SELECT record FROM mana_ai.mission_snapshots WHERE user_id = $1 AND mission_id = $2";

static uint32
agent_key_hash(const void *key, Size keysize)
{
	const char *s = *(const char *const *) key;

	return hash_bytes((const unsigned char *) s, (int) strlen(s));
}

static int
agent_key_match(const void *a, const void *b, Size keysize)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* A table keyed by tick_agent_key() (or any string), in the tick's memory. */
HTAB *
tick_agent_table(Tick *t, const char *name, Size entrysize)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(char *);
	ctl.entrysize = entrysize;
	ctl.hash = agent_key_hash;
	ctl.match = agent_key_match;
	ctl.hcxt = t->cxt;
	return hash_create(name, 64, &ctl, HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

/*
 * "<length of user_id>:<user_id><agent_id>": the whole pair however long,
 * so no id can run into the other, and no fixed-size copy that two long
 * ids sharing a prefix would collide in.
 */
char *
tick_agent_key(const char *user_id, const char *agent_id)
{
	return psprintf("%zu:%s%s", strlen(user_id), user_id, agent_id);
}

/*
 * One token pool per (user, agent) with a budget, shared by the agent's
 * missions of this tick, so the loop stops every one of them between
 * rounds once the agent reaches maxTokensPerDay.  The pool's address is
 * stable (dynahash never moves an entry).
 */
void
tick_share_token_budget(Tick *t, Job *job)
{
	char	   *key;
	bool		found;
	AgentPool  *pool;

	if (job->token_budget < 0)
		return;
	if (t->pools == NULL)
		t->pools = tick_agent_table(t, "mana_ai token pools", sizeof(AgentPool));
	key = tick_agent_key(job->user_id, job->agent_id);
	pool = (AgentPool *) hash_search(t->pools, &key, HASH_ENTER, &found);
	if (!found)
		pool->tokens_left = job->token_budget;
	job->token_pool = &pool->tokens_left;
}

/* text in the tick's memory, one copy per distinct text (read-only). */
static char *
keep_prompt(Tick *t, const char *text)
{
	bool		found;
	char	  **kept;

	if (t->prompts == NULL)
		t->prompts = tick_agent_table(t, "mana_ai system prompts", sizeof(char *));
	kept = (char **) hash_search(t->prompts, &text, HASH_ENTER, &found);
	if (!found)
		*kept = MemoryContextStrdup(t->cxt, text);	/* the key points here now */
	return *kept;
}

/*
 * The mission's record as the refresh left it, in the scratch memory; a
 * mission whose snapshot went away since the selection is an error of
 * this mission only.
 */
static Jsonb *
read_record(Job *job)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		args[2];
	Jsonb	   *record;
	bool		isnull;

	args[0] = CStringGetTextDatum(job->user_id);
	args[1] = CStringGetTextDatum(job->mission_id);
	mana_ai_spi_connect();
	mana_ai_run_kept(RECORD_SQL, 2, types, 0, args, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("the snapshot of mission %s went away during the tick", job->mission_id)));
	record = DatumGetJsonbP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
										  &isnull));
	record = (Jsonb *) SPI_datumTransfer(JsonbPGetDatum(record), false, -1);
	mana_ai_spi_finish();
	return record;
}

/*
 * Cadence, grant, inputs, prompt for one mission.  A cadence next_run_at
 * refuses would fail only in the write-back, after the LLM call: it is
 * tried first, and its error fails the mission at once (cadence_checked
 * stays false).  A grant that does not unwrap is no error: it is counted
 * and the mission runs without its encrypted inputs.
 */
static void
prepare_job(Tick *t, Job *job)
{
	Jsonb	   *mission;
	List	   *inputs;
	PlannerPrompt prompt;
	Jsonb	   *cadence;
	bool		manual;

	MemoryContextSwitchTo(t->job_cxt);
	mission = read_record(job);
	MemoryContextSwitchTo(t->job_cxt);
	cadence = jb_member_object(mission, "cadence");
	if (cadence != NULL)
		(void) mana_ai_next_run_at(cadence, GetCurrentTimestamp(), &manual);
	job->cadence_checked = true;

	inputs = mana_ai_resolve_mission_inputs(job->user_id, job->mission_id, mission,
											job->iteration_id, true);
	MemoryContextSwitchTo(t->job_cxt);
	prompt = mana_ai_render_prompt(mission, job->agent, inputs,
								   t->protocol == MANA_AI_PROTOCOL_TOOLS);

	MemoryContextSwitchTo(t->cxt);
	job->call = palloc0(sizeof(LlmCall));
	job->call->system = keep_prompt(t, prompt.system);
	job->call->user = pstrdup(prompt.user);
	job->call->tools = prompt.tools;	/* in the tick's memory already */
	job->call->tools_reserve = prompt.tools_reserve;
	job->call->token_budget = job->token_pool;
	job->call->budget_total = job->token_total;
	job->prepared = true;
}

/*
 * Prepare one taken mission; false when it failed (its failure is set on
 * the job for the write-back).  Its scratch is freed either way.
 */
bool
tick_prepare_mission(Tick *t, Job *job)
{
	char	   *error = NULL;

	if (t->job_cxt == NULL)
		t->job_cxt = AllocSetContextCreate(t->cxt, "mana_ai mission prepare",
										   ALLOCSET_DEFAULT_SIZES);
	if (!tick_run_isolated(t, prepare_job, job, &error))
	{
		job->prepared = false;
		job->fail_phase = "resolving-inputs";
		job->cadence_invalid = !job->cadence_checked;
		job->fail_name = job->cadence_invalid ? "CadenceError" : "InputError";
		job->fail_message = job->cadence_invalid ?
			psprintf("invalid cadence: %s", error) : error;
	}
	MemoryContextReset(t->job_cxt);
	return job->prepared;
}

/*
 * The user prompt holds the mission's decrypted inputs: once its call has
 * ended nothing needs it, so it is wiped and freed then, not at the end
 * of the tick.
 */
void
tick_forget_prompt(Job *job)
{
	char	   *user;

	if (!job->prepared || job->call->user == NULL)
		return;
	user = unconstify(char *, job->call->user);
	explicit_bzero(user, strlen(user));
	pfree(user);
	job->call->user = NULL;
}
