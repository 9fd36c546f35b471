/*
 * llm.c: the planner's LLM calls from inside PostgreSQL (SPEC 8), and the
 * diagnostic SQL function mana_ai.llm_test_call().
 *
 * Owns reading the bearer key (mana_ai.llm_key_file, refused when group or
 * others can read it, as the server refuses such an ssl_key_file), the
 * loop's configuration from the GUCs (protocol, model chain, rounds),
 * driving src/core/planner_loop.c in 100 ms steps with CHECK_FOR_INTERRUPTS
 * in between, its metric hooks, and copying results into palloc'd memory.  Must never log,
 * return or keep the key: it lives in a stack buffer wiped as soon as the
 * client has copied it into its header list (wiped when the batch is
 * freed), on every exit path.  Must never open a transaction itself.
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/pmsignal.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

/* json-c's json_object type clashes with fmgrprotos.h (see planner.c). */
#define json_object jsonc_object
#include "core/planner_loop.h"
#include "ops/guc.h"
#include "ops/metrics.h"
#include "planner/llm.h"

#define KEY_MAX_LEN 4096
#define STEP_WAIT_MS 100
#define TEST_CALL_MAX_COPIES 1000

/*
 * The provider's limits as this process has learnt them: kept from one
 * batch to the next (a worker's ticks follow each other within the
 * provider's minute), reported to the metrics as deltas.
 */
static LlmRateLimit rate_limit;
static double limit_wait_reported[LLM_LIMIT_N_REASONS];
static int64_t rate_limited_reported;

static void read_key_file(const char *path, char *key, size_t keysize);
static void fill_config(PlanLoopConfig *cfg, int protocol,
						char names[][MANA_AI_MODEL_NAME_LEN]);
static void count_tool_call(void *arg, const char *tool, bool planned);
static void count_llm_error(void *arg, const char *model, LlmErrorKind kind);
static void count_fallback(void *arg, const char *from, const char *to);
static void count_request(void *arg, double seconds);
static void count_breaker_open(void *arg, const char *model, int failures);
static void count_tokens(void *arg, const char *model, int64_t sent, int64_t received);
/* The consumer and the feeder of one mana_ai_llm_complete_stream call. */
typedef struct StreamState
{
	LlmFinishedFn fn;
	LlmFeedFn	feed;			/* NULL: every call given at the start */
	void	   *arg;
	LlmCall    *calls;
	PlanMission *missions;
	bool		tools;
	bool	   *taken;			/* handed to fn already */
	int		   *done;			/* scratch for plan_loop_take_finished */
	int			n;				/* room: the calls[] array's length */
	int			added;			/* calls[0..added) are in the loop */
	bool		closed;			/* the feeder has no more */
	int			lookahead;		/* calls the feeder keeps ready to start */
} StreamState;

static void run_loop(PlanLoop *volatile *loopp, StreamState *stream);
static void mission_from_call(PlanMission *m, const LlmCall *c);
static bool feed_loop(PlanLoop *loop, StreamState *st);
static void fail_unstarted(StreamState *st, const char *err);
static void copy_results(LlmCall *calls, PlanMission *missions, const int *idx,
						 int ncalls, bool tools);

/*
 * Read the bearer key into key[] (NUL-terminated, trailing whitespace
 * stripped).  Refuses, like the server's ssl_key_file check, a file that
 * group or others may read (0640 is allowed when root owns it).  Error
 * texts name the file, never its content.
 */
static void
read_key_file(const char *path, char *key, size_t keysize)
{
	struct stat st;
	int			fd;
	ssize_t		n;
	size_t		len = 0;
	size_t		i;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open LLM key file \"%s\": %m", path),
				 errhint("Check mana_ai.llm_key_file.")));
	if (fstat(fd, &st) != 0)
	{
		int			save_errno = errno;

		close(fd);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat LLM key file \"%s\": %m", path)));
	}
	if (!S_ISREG(st.st_mode))
	{
		close(fd);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("LLM key file \"%s\" is not a regular file", path)));
	}
	if (st.st_uid != geteuid() && st.st_uid != 0)
	{
		close(fd);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("LLM key file \"%s\" must be owned by the database user or root", path)));
	}
	if ((st.st_uid == geteuid() && (st.st_mode & (S_IRWXG | S_IRWXO))) ||
		(st.st_uid == 0 && (st.st_mode & (S_IWGRP | S_IXGRP | S_IRWXO))))
	{
		close(fd);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("LLM key file \"%s\" has group or world access", path),
				 errdetail("File must have permissions u=rw (0600) or less if owned by the database user, or permissions u=rw,g=r (0640) or less if owned by root."),
				 errhint("Run chmod 600 on the file.")));
	}

	while (len < keysize - 1 &&
		   (n = read(fd, key + len, keysize - 1 - len)) != 0)
	{
		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			close(fd);
			explicit_bzero(key, keysize);
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read LLM key file \"%s\": %m", path)));
		}
		len += n;
	}
	close(fd);
	key[len] = '\0';
	while (len > 0 && (key[len - 1] == '\n' || key[len - 1] == '\r' ||
					   key[len - 1] == ' ' || key[len - 1] == '\t'))
		key[--len] = '\0';

	/* Anything but visible ASCII would end up inside an HTTP header. */
	for (i = 0; i < len; i++)
		if (key[i] <= ' ' || key[i] > '~')
			break;
	if (len == 0 || i < len || len >= keysize - 1)
	{
		bool		empty = (len == 0);

		explicit_bzero(key, keysize);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("LLM key file \"%s\" does not hold a usable key", path),
				 errdetail(empty ? "The file is empty." :
						   "The key must be one line of printable ASCII of at most 4095 bytes.")));
	}
}

/* The loop's configuration from the GUCs; models point into names. */
static void
fill_config(PlanLoopConfig *cfg, int protocol,
			char names[][MANA_AI_MODEL_NAME_LEN])
{
	int			n = mana_ai_llm_model_chain(mana_ai_llm_model, names);

	memset(cfg, 0, sizeof(*cfg));
	cfg->client.url = mana_ai_llm_url;
	cfg->client.temperature = mana_ai_llm_temperature;
	cfg->client.connect_timeout_ms = mana_ai_llm_connect_timeout;
	cfg->client.timeout_ms = mana_ai_llm_timeout;
	cfg->client.max_response_bytes = (size_t) mana_ai_llm_max_response_size * 1024;
	cfg->client.max_parallel = mana_ai_llm_max_parallel;
	cfg->client.max_attempts = 0;	/* the client's default; the deadline rules */
	llm_rl_configure(&rate_limit, mana_ai_llm_requests_per_minute,
					 mana_ai_llm_tokens_per_minute, mana_ai_llm_max_parallel,
					 llm_monotonic_seconds());
	cfg->client.limit = &rate_limit;
	if (n < 1)					/* the check hook keeps this from happening */
	{
		strlcpy(names[0], "gpt-4o-mini", MANA_AI_MODEL_NAME_LEN);
		n = 1;
	}
	for (int i = 0; i < n && i < PLAN_LOOP_MAX_MODELS; i++)
		cfg->models[i] = names[i];
	cfg->n_models = Min(n, PLAN_LOOP_MAX_MODELS);
	cfg->protocol = protocol == MANA_AI_PROTOCOL_JSON ? PLAN_PROTOCOL_JSON : PLAN_PROTOCOL_TOOLS;
	cfg->max_rounds = mana_ai_planner_max_rounds;
	cfg->max_steps = PLAN_LOOP_DEFAULT_MAX_STEPS;
	cfg->injection = (InjectionPolicy) mana_ai_injection_policy;
	cfg->hooks.tool_call = count_tool_call;
	cfg->hooks.llm_error = count_llm_error;
	cfg->hooks.fallback = count_fallback;
	cfg->hooks.request = count_request;
	cfg->hooks.breaker_open = count_breaker_open;
	cfg->hooks.tokens = count_tokens;
}

/*
 * The loop's hooks: shared-memory counters only (no ereport can come out
 * of them).  A tool name the model made up is never a label: the loop
 * passes NULL for any name that was not offered, counted as "unknown".
 */
static void
count_tool_call(void *arg, const char *tool, bool planned)
{
	mana_ai_metric_inc_labeled2(ML_TOOL_CALLS, tool ? tool : "unknown",
								planned ? "planned" : "invalid", 1);
}

static void
count_llm_error(void *arg, const char *model, LlmErrorKind kind)
{
	mana_ai_metric_inc_labeled2(ML_LLM_ERRORS, model, llm_error_kind_name(kind), 1);
}

static void
count_fallback(void *arg, const char *from, const char *to)
{
	mana_ai_metric_inc_labeled2(ML_LLM_FALLBACKS, from, to, 1);
}

/* A model of the chain (mana_ai.llm_model's, so a closed label set). */
static void
count_breaker_open(void *arg, const char *model, int failures)
{
	mana_ai_metric_inc_labeled(ML_MODEL_BREAKER_OPEN, model, 1);
}

/* After the loop (no ereport inside it): one LOG line per model it opened. */
static void
log_breaker(const PlanLoopConfig *cfg, const PlanBreaker *b)
{
	for (int k = 0; k < cfg->n_models; k++)
		if (b->open[k])
			ereport(LOG,
					(errmsg("mana_ai: model \"%s\" failed %d calls in a row; the rest of the tick skipped it",
							cfg->models[k], b->threshold),
					 errdetail("%d rounds went straight to the next model of mana_ai.llm_model.",
							   b->skipped[k]),
					 errhint("mana_ai.model_breaker_failures sets the threshold; 0 turns the breaker off.")));
}

static void
count_request(void *arg, double seconds)
{
	mana_ai_metric_observe(MH_PLANNER_REQUEST_DURATION, seconds);
}

static void
count_tokens(void *arg, const char *model, int64_t sent, int64_t received)
{
	mana_ai_metric_inc_labeled2(ML_LLM_TOKENS, model, "sent", (uint64) sent);
	mana_ai_metric_inc_labeled2(ML_LLM_TOKENS, model, "received", (uint64) received);
}

/* What the limiter counted since the last report: 429s, time waited. */
static void
report_limits(int in_flight)
{
	mana_ai_metric_set(MG_LLM_IN_FLIGHT, (uint64) in_flight);
	if (rate_limit.rate_limited > rate_limited_reported)
	{
		mana_ai_metric_inc(MC_LLM_RATE_LIMITED,
						   (uint64) (rate_limit.rate_limited - rate_limited_reported));
		rate_limited_reported = rate_limit.rate_limited;
	}
	for (int r = 0; r < LLM_LIMIT_N_REASONS; r++)
	{
		double		us = (rate_limit.wait_seconds[r] - limit_wait_reported[r]) * 1e6;

		if (us >= 1000)
		{
			mana_ai_metric_inc_labeled(ML_LLM_LIMIT_WAIT, llm_rl_reason_name(r), (uint64) us);
			limit_wait_reported[r] += us / 1e6;
		}
	}
}

/*
 * The calls that ended since the last look, copied out and handed to the
 * stream's consumer; how long the next wait may be (ms).
 */
static int
hand_over(PlanLoop *loop, StreamState *st)
{
	int			k;
	int			wait;

	if (st->fn == NULL)
		return STEP_WAIT_MS;
	k = plan_loop_take_finished(loop, st->done, st->n);
	copy_results(st->calls, st->missions, st->done, k, st->tools);
	for (int j = 0; j < k; j++)
		st->taken[st->done[j]] = true;
	wait = st->fn(st->arg, st->done, k);
	return (wait < 0 || wait > STEP_WAIT_MS) ? STEP_WAIT_MS : wait;
}

/* The loop's copy of a call's inputs. */
static void
mission_from_call(PlanMission *m, const LlmCall *c)
{
	m->system = c->system;
	m->user = c->user;
	m->tools = c->tools;
	m->tools_reserve = c->tools_reserve;
	m->budget = (int64_t *) c->token_budget;
	m->budget_total = c->budget_total;
}

/*
 * Let the feeder add calls until lookahead of them wait to be started (a
 * mission in flight is being answered meanwhile; one prepared too early
 * only holds memory).  True when the loop should come back at once: the
 * feeder stopped short of the lookahead (it keeps its pauses short) and
 * has more.
 */
static bool
feed_loop(PlanLoop *loop, StreamState *st)
{
	int			room;
	int			k;
	char		err[256];

	if (st->closed)
		return false;
	room = Min(st->lookahead - plan_loop_waiting(loop), st->n - st->added);
	if (room <= 0)
		return false;			/* enough wait to be started */
	k = st->feed(st->arg, st->added, room, &st->closed);
	k = Max(Min(k, room), 0);	/* no more than it was given room for */
	for (int j = 0; j < k; j++)
	{
		int			i = st->added++;

		mission_from_call(&st->missions[i], &st->calls[i]);
		(void) plan_loop_add(loop, err, sizeof(err));	/* a refusal ends it: handed over */
	}
	if (st->added >= st->n)
		st->closed = true;
	if (st->closed)
		plan_loop_close(loop);
	return !st->closed && k < room;
}

/*
 * Step the loop until every conversation has ended, feeding it and
 * handing each ended one to the stream's consumer between steps (never
 * during a wait).  Between steps the usual interrupt processing runs; when
 * it raises, the caller's PG_CATCH frees the loop, which closes every
 * connection still open.  A pending SIGTERM turns into FATAL (proc_exit,
 * no PG_CATCH), so the loop is freed first.
 */
static void
run_loop(PlanLoop *volatile *loopp, StreamState *stream)
{
	int			wait = STEP_WAIT_MS;

	for (;;)
	{
		if (stream->feed && feed_loop(*loopp, stream))
			wait = 0;			/* more to feed: only look at the network */
		if (plan_loop_step(*loopp, wait))
			break;
		report_limits(plan_loop_in_flight(*loopp));
		if (ProcDiePending || !PostmasterIsAlive())
		{
			plan_loop_free(*loopp);
			*loopp = NULL;
			if (!PostmasterIsAlive())
				ereport(FATAL,
						(errcode(ERRCODE_ADMIN_SHUTDOWN),
						 errmsg("terminating because the postmaster died during LLM calls")));
			report_limits(0);
			CHECK_FOR_INTERRUPTS();
			/* Interrupts held off: the calls are aborted, report them so. */
			return;
		}
		CHECK_FOR_INTERRUPTS();
		wait = hand_over(*loopp, stream);
	}
	plan_loop_free(*loopp);
	*loopp = NULL;
	report_limits(0);
}

/* malloc'd text into palloc'd memory in the server encoding (NULL: none). */
static char *
take_text(char **text, const char **error)
{
	char	   *out;

	if (*text == NULL)
		return NULL;
	out = pstrdup(*text);
	free(*text);
	*text = NULL;
	if (!pg_verify_mbstr(PG_UTF8, out, strlen(out), true))
	{
		*error = "answer is not valid UTF-8";
		pfree(out);
		return NULL;
	}
	return out;
}

/*
 * Move the loop's malloc'd results into palloc'd LlmCall fields: of the
 * calls idx[0..ncalls) names, or of calls[0..ncalls) when idx is NULL.
 */
static void
copy_results(LlmCall *calls, PlanMission *missions, const int *idx, int ncalls, bool tools)
{
	for (int j = 0; j < ncalls; j++)
	{
		int			i = idx ? idx[j] : j;
		LlmCall    *c = &calls[i];
		PlanMission *m = &missions[i];
		const char *bad = NULL;
		char	   *plan = (tools && m->ok) ? plan_mission_plan_json(m) : NULL;

		c->ok = m->ok;
		c->answered = m->rounds > 0;
		c->total_tokens = m->total_tokens;
		c->model = m->model ? pstrdup(m->model) : NULL;
		c->rounds = m->rounds;
		c->end = plan_end_name(m->end);
		c->http_status = m->http_status;
		c->attempts = m->attempts;
		c->seconds = m->seconds;
		c->answered_at = m->ended_at;
		c->error = NULL;
		c->content = tools ? NULL : take_text(&m->content, &bad);
		c->plan = take_text(&plan, &bad);
		free(plan);
		/* labels and catalog names only: ASCII, nothing to convert */
		c->flags = m->flags ? pstrdup(json_object_to_json_string_ext(m->flags,
																	 JSON_C_TO_STRING_PLAIN)) : NULL;
		if (m->ok && (bad != NULL || (tools && c->plan == NULL)))
		{
			c->ok = false;
			c->error = pstrdup(bad ? bad : "out of memory building the plan");
		}
		else if (!m->ok)
			c->error = pstrdup(m->error[0] ? m->error : "failed");
		plan_mission_clear(m);
		if (m->end != PLAN_END_ABORTED)
			mana_ai_metric_observe(MH_PLANNER_ROUNDS, m->rounds);
	}
	/* Conversion may raise; every malloc'd byte is already freed. */
	for (int j = 0; j < ncalls; j++)
	{
		int			i = idx ? idx[j] : j;

		if (calls[i].content)
			calls[i].content = pg_any_to_server(calls[i].content,
												strlen(calls[i].content), PG_UTF8);
		if (calls[i].plan)
			calls[i].plan = pg_any_to_server(calls[i].plan, strlen(calls[i].plan), PG_UTF8);
	}
}

void
mana_ai_llm_complete(LlmCall *calls, int ncalls, int protocol)
{
	mana_ai_llm_complete_stream(calls, ncalls, protocol, NULL);
}

double
mana_ai_llm_now(void)
{
	return llm_monotonic_seconds();
}

void
mana_ai_llm_complete_stream(LlmCall *calls, int ncalls, int protocol,
							const LlmStreamHooks *hooks)
{
	PlanMission *missions;
	StreamState stream;
	int		   *rest;
	int			nrest = 0;
	PlanLoopConfig cfg;
	char		names[MANA_AI_MAX_MODELS][MANA_AI_MODEL_NAME_LEN];
	char		key[KEY_MAX_LEN + 1];
	char		err[256];
	PlanLoop   *volatile loop = NULL;
	PlanBreaker breaker;		/* this tick's, for every mission of it */

	if (ncalls <= 0)
		return;
	missions = palloc0(sizeof(PlanMission) * ncalls);
	fill_config(&cfg, protocol, names);
	memset(&stream, 0, sizeof(stream));
	if (hooks)
	{
		stream.fn = hooks->finished;
		stream.feed = hooks->feed;
		stream.arg = hooks->arg;
	}
	stream.calls = calls;
	stream.missions = missions;
	stream.tools = cfg.protocol == PLAN_PROTOCOL_TOOLS;
	stream.taken = palloc0(sizeof(bool) * ncalls);
	stream.done = palloc(sizeof(int) * ncalls);
	stream.n = ncalls;
	/* two rounds' worth of parallel calls ready: the slots never idle */
	stream.lookahead = 2 * Max(cfg.client.max_parallel, 1);
	memset(&breaker, 0, sizeof(breaker));
	breaker.threshold = mana_ai_model_breaker_failures;
	cfg.breaker = &breaker;
	key[0] = '\0';

	PG_TRY();
	{
		if (mana_ai_llm_key_file && mana_ai_llm_key_file[0])
			read_key_file(mana_ai_llm_key_file, key, sizeof(key));
		cfg.client.api_key = key;
		if (stream.feed)
			loop = plan_loop_open(&cfg, missions, ncalls, err, sizeof(err));
		else
		{
			for (int i = 0; i < ncalls; i++)
				mission_from_call(&missions[i], &calls[i]);
			stream.added = ncalls;
			loop = plan_loop_create(&cfg, missions, ncalls, err, sizeof(err));
		}
		explicit_bzero(key, sizeof(key));
		if (loop == NULL)
			fail_unstarted(&stream, err);
		else
			run_loop(&loop, &stream);	/* frees the loop and clears loop */
	}
	PG_CATCH();
	{
		explicit_bzero(key, sizeof(key));
		if (loop != NULL)
			plan_loop_free(loop);	/* aborts what is in flight */
		mana_ai_metric_set(MG_LLM_IN_FLIGHT, 0);
		for (int i = 0; i < stream.added; i++)
		{
			/* the rounds that were answered were paid for: the caller counts them */
			calls[i].total_tokens = missions[i].total_tokens;
			plan_mission_clear(&missions[i]);
		}
		PG_RE_THROW();
	}
	PG_END_TRY();

	log_breaker(&cfg, &breaker);
	rest = stream.done;
	for (int i = 0; i < stream.added; i++)
		if (!stream.taken[i])
			rest[nrest++] = i;
	copy_results(calls, missions, rest, nrest, stream.tools);
	pfree(stream.taken);
	pfree(stream.done);
	pfree(missions);
}

/*
 * The loop could not be set up (the client is unusable): every call
 * fails with the reason, the fed ones too, each fed and handed over as
 * the feeder gives them, so the caller sees every one end.
 */
static void
fail_unstarted(StreamState *st, const char *err)
{
	while (st->feed && !st->closed && st->added < st->n)
	{
		int			k = st->feed(st->arg, st->added, st->n - st->added, &st->closed);

		for (int j = 0; j < k; j++)
			mission_from_call(&st->missions[st->added + j], &st->calls[st->added + j]);
		st->added += k;
	}
	if (!st->feed)
		st->added = st->n;
	for (int i = 0; i < st->added; i++)
	{
		st->missions[i].end = PLAN_END_LLM_ERROR;
		st->missions[i].total_tokens = -1;
		strlcpy(st->missions[i].error, err, sizeof(st->missions[i].error));
	}
}

/*
 * mana_ai.llm_test_call(system, user_message, copies): send the same
 * prompt copies times at once and report each result (never the key).
 * For operators checking the endpoint and for the cancel/timeout tests.
 */
PG_FUNCTION_INFO_V1(mana_ai_llm_test_call);
Datum
mana_ai_llm_test_call(PG_FUNCTION_ARGS)
{
	char	   *system = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *user = text_to_cstring(PG_GETARG_TEXT_PP(1));
	int32		copies = PG_GETARG_INT32(2);
	LlmCall    *calls;
	StringInfoData out;
	int			i;

	if (copies < 1 || copies > TEST_CALL_MAX_COPIES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("copies must be between 1 and %d", TEST_CALL_MAX_COPIES)));

	calls = palloc0(sizeof(LlmCall) * copies);
	for (i = 0; i < copies; i++)
	{
		calls[i].system = system;
		calls[i].user = user;
	}
	mana_ai_llm_complete(calls, copies, MANA_AI_PROTOCOL_JSON);

	initStringInfo(&out);
	appendStringInfoChar(&out, '[');
	for (i = 0; i < copies; i++)
	{
		LlmCall    *c = &calls[i];

		appendStringInfo(&out, "%s{\"ok\": %s, \"http_status\": %d, \"attempts\": %d, \"seconds\": %.3f, \"total_tokens\": ",
						 i ? ", " : "", c->ok ? "true" : "false",
						 c->http_status, c->attempts, c->seconds);
		if (c->total_tokens >= 0)
			appendStringInfo(&out, INT64_FORMAT, c->total_tokens);
		else
			appendStringInfoString(&out, "null");
		appendStringInfoString(&out, ", \"content\": ");
		if (c->content)
			escape_json(&out, c->content);
		else
			appendStringInfoString(&out, "null");
		appendStringInfoString(&out, ", \"error\": ");
		if (c->error)
			escape_json(&out, c->error);
		else
			appendStringInfoString(&out, "null");
		appendStringInfoChar(&out, '}');
	}
	appendStringInfoChar(&out, ']');

	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data)));
}
