/*
 * guc.c: defines every mana_ai.* parameter and reserves the prefix.
 *
 * Owns names, defaults, units and contexts.  Must never define a
 * parameter an ordinary session can set: a user-settable llm_url would
 * let any session ship other users' decrypted inputs to a host of its
 * choosing, a user-settable key path would let it read files.
 */
#include "postgres.h"

#include <limits.h>

#include "miscadmin.h"
#include "pgtime.h"
#include "utils/guc.h"
#include "utils/varlena.h"

#include "ops/guc.h"

char	   *mana_ai_database = NULL;
char	   *mana_ai_role = NULL;
bool		mana_ai_enabled = true;
int			mana_ai_tick_interval = 60;
char	   *mana_ai_llm_url = NULL;
char	   *mana_ai_llm_model = NULL;
double		mana_ai_llm_temperature = 0.3;
int			mana_ai_llm_timeout = 60000;
int			mana_ai_llm_connect_timeout = 10000;
int			mana_ai_llm_max_parallel = 8;
int			mana_ai_llm_max_response_size = 1024;
int			mana_ai_llm_requests_per_minute = 0;
int			mana_ai_llm_tokens_per_minute = 0;
char	   *mana_ai_llm_key_file = NULL;
char	   *mana_ai_private_key_file = NULL;
int			mana_ai_max_attempts = 3;
int			mana_ai_max_iterations_kept = 0;
char	   *mana_ai_timezone = NULL;
int			mana_ai_audit_retention = 90 * 24 * 60;
int			mana_ai_tick_runs_retention = 14 * 24 * 60;
int			mana_ai_mission_runs_retention = 14 * 24 * 60;
int			mana_ai_late_row_window = 60;
int			mana_ai_writeback_batch_size = 32;
int			mana_ai_writeback_batch_time = 100;
int			mana_ai_refresh_lock_timeout = 30000;

/*
 * Every planner call in flight may buffer a whole answer: the product of
 * llm_max_parallel and llm_max_response_size is capped (in kB).
 */
#define LLM_BUFFER_CAP_KB (256 * 1024)

int			mana_ai_planner_protocol = MANA_AI_PROTOCOL_TOOLS;
int			mana_ai_planner_max_rounds = 5;
int			mana_ai_model_breaker_failures = 5;
int			mana_ai_injection_policy = MANA_AI_INJECTION_LOG;

/* The values of core/injection.h's InjectionPolicy, in its order. */
static const struct config_enum_entry injection_policy_options[] = {
	{"off", MANA_AI_INJECTION_OFF, false},
	{"log", MANA_AI_INJECTION_LOG, false},
	{"refuse", MANA_AI_INJECTION_REFUSE, false},
	{NULL, 0, false}
};
char	   *mana_ai_planner_core_modules = NULL;

static const struct config_enum_entry planner_protocol_options[] = {
	{"tools", MANA_AI_PROTOCOL_TOOLS, false},
	{"json", MANA_AI_PROTOCOL_JSON, false},
	{NULL, 0, false}
};

static bool check_timezone_name(char **newval, void **extra, GucSource source);
static bool check_llm_url(char **newval, void **extra, GucSource source);
static bool check_llm_model(char **newval, void **extra, GucSource source);
static bool check_llm_buffer(int parallel, int size_kb);
static bool check_llm_max_parallel(int *newval, void **extra, GucSource source);
static bool check_llm_max_response_size(int *newval, void **extra, GucSource source);
static bool check_core_modules(char **newval, void **extra, GucSource source);

/* A comma-separated list of module names (the catalog's module syntax). */
static bool
check_core_modules(char **newval, void **extra, GucSource source)
{
	char	   *copy;
	List	   *names = NIL;
	ListCell   *lc;
	bool		ok;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	copy = pstrdup(*newval);
	ok = SplitIdentifierString(copy, ',', &names);
	foreach(lc, names)
	{
		const char *m = lfirst(lc);

		if (!ok)
			break;
		ok = m[0] >= 'a' && m[0] <= 'z' && strlen(m) <= 63 &&
			strspn(m, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == strlen(m);
	}
	if (!ok)
		GUC_check_errdetail("mana_ai.planner_core_modules is a comma-separated list of module names such as todo,calendar.");
	list_free(names);
	pfree(copy);
	return ok;
}

/* Accept only zone names the server's own tz database knows. */
static bool
check_timezone_name(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (*newval)[0] == '\0' || pg_tzset(*newval) == NULL)
	{
		GUC_check_errdetail("\"%s\" is not a time zone name known to this server.",
							*newval ? *newval : "");
		return false;
	}
	return true;
}

/* Only http and https: the URL is where decrypted inputs may be sent. */
static bool
check_llm_url(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL ||
		(pg_strncasecmp(*newval, "http://", 7) != 0 &&
		 pg_strncasecmp(*newval, "https://", 8) != 0))
	{
		GUC_check_errdetail("mana_ai.llm_url must start with http:// or https://.");
		return false;
	}
	return true;
}

/*
 * Each hook checks its new value against the other's current one, so the
 * cap holds whatever order a reload applies them in.  The price: a reload
 * that lowers one and raises the other may refuse the raise when it comes
 * first (logged with the hint below); the next reload applies it.  At
 * server start llm_max_parallel is defined, and so applied, first, against
 * the default llm_max_response_size (256 x 1MB is within the cap).
 */
static bool
check_llm_buffer(int parallel, int size_kb)
{
	if ((int64) parallel * size_kb <= LLM_BUFFER_CAP_KB)
		return true;
	GUC_check_errdetail("mana_ai.llm_max_parallel (%d) times mana_ai.llm_max_response_size (%d kB) "
						"would let the LLM calls buffer up to " INT64_FORMAT " MB; the limit is %d MB.",
						parallel, size_kb, (int64) parallel * size_kb / 1024,
						LLM_BUFFER_CAP_KB / 1024);
	GUC_check_errhint("Lower the other parameter first (and reload), then raise this one.");
	return false;
}

static bool
check_llm_max_parallel(int *newval, void **extra, GucSource source)
{
	return check_llm_buffer(*newval, mana_ai_llm_max_response_size);
}

static bool
check_llm_max_response_size(int *newval, void **extra, GucSource source)
{
	return check_llm_buffer(mana_ai_llm_max_parallel, *newval);
}

/* A chain of 1 to MANA_AI_MAX_MODELS names separated by commas. */
static bool
check_llm_model(char **newval, void **extra, GucSource source)
{
	char		names[MANA_AI_MAX_MODELS][MANA_AI_MODEL_NAME_LEN];
	int			n = mana_ai_llm_model_chain(*newval, names);

	if (n < 0)
	{
		GUC_check_errdetail("mana_ai.llm_model is a comma-separated list of 1 to %d model names of at most %d bytes each, such as \"gpt-4o-mini,llama3.1:8b\".",
							MANA_AI_MAX_MODELS, MANA_AI_MODEL_NAME_LEN - 1);
		return false;
	}
	return true;
}

int
mana_ai_llm_model_chain(const char *value, char names[][MANA_AI_MODEL_NAME_LEN])
{
	int			n = 0;
	const char *p = value;

	if (value == NULL)
		return -1;
	for (;;)
	{
		const char *end = strchr(p, ',');
		size_t		len = end ? (size_t) (end - p) : strlen(p);

		while (len > 0 && (*p == ' ' || *p == '\t'))
			p++, len--;
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len == 0 || len >= MANA_AI_MODEL_NAME_LEN || n >= MANA_AI_MAX_MODELS)
			return -1;
		for (size_t i = 0; i < len; i++)
			if ((unsigned char) p[i] < 0x20 || p[i] == 0x7f)
				return -1;
		memcpy(names[n], p, len);
		names[n][len] = '\0';
		n++;
		if (end == NULL)
			return n;
		p = end + 1;
	}
}

void
mana_ai_define_gucs(void)
{
	/*
	 * database and role are fixed at server start when preloaded.  Loaded
	 * later (SQL surface only) PostgreSQL refuses new PGC_POSTMASTER
	 * parameters; they are then PGC_SIGHUP, still out of any session's
	 * reach and without effect, as there is no worker.
	 */
	GucContext	start_context = process_shared_preload_libraries_in_progress ?
		PGC_POSTMASTER : PGC_SIGHUP;

	DefineCustomStringVariable("mana_ai.database",
							   "Database the mana_ai worker ticks in.",
							   NULL, &mana_ai_database, "mana_sync",
							   start_context, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("mana_ai.role",
							   "Role the mana_ai worker connects as (empty: bootstrap superuser).",
							   "Production names a dedicated role without BYPASSRLS.",
							   &mana_ai_role, "",
							   start_context, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("mana_ai.enabled",
							 "Whether the worker runs its own ticks.",
							 "SELECT mana_ai_tick() works either way.",
							 &mana_ai_enabled, true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("mana_ai.tick_interval",
							"Time between the worker's ticks.",
							NULL, &mana_ai_tick_interval, 60, 1, 24 * 60 * 60,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomStringVariable("mana_ai.llm_url",
							   "Base URL of the OpenAI-compatible LLM endpoint (http or https).",
							   "Readable by superusers and pg_read_all_settings only (it may hold a credential); "
							   "mana_ai.status shows it redacted.",
							   &mana_ai_llm_url, "http://localhost:3020",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY, check_llm_url, NULL, NULL);
	DefineCustomStringVariable("mana_ai.llm_model",
							   "Model sent to the LLM, or a comma-separated fallback chain.",
							   "A call failing by connection error, timeout, 5xx or 429 moves to the next model.",
							   &mana_ai_llm_model, "gpt-4o-mini",
							   PGC_SIGHUP, 0, check_llm_model, NULL, NULL);
	DefineCustomRealVariable("mana_ai.llm_temperature",
							 "Sampling temperature sent to the LLM.",
							 NULL, &mana_ai_llm_temperature, 0.3, 0.0, 2.0,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("mana_ai.llm_timeout",
							"Total time allowed for one mission's planner conversation: every round, retry and fallback.",
							NULL, &mana_ai_llm_timeout, 60000, 100, 10 * 60 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("mana_ai.llm_connect_timeout",
							"Time allowed to connect to the LLM endpoint.",
							NULL, &mana_ai_llm_connect_timeout, 10000, 100, 10 * 60 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("mana_ai.llm_max_parallel",
							"Planner calls in flight at once.",
							"Times mana_ai.llm_max_response_size at most 256MB.",
							&mana_ai_llm_max_parallel, 8, 1, 256,
							PGC_SIGHUP, 0, check_llm_max_parallel, NULL, NULL);
	DefineCustomIntVariable("mana_ai.llm_requests_per_minute",
							"The provider's requests-per-minute limit the planner keeps (0: unknown).",
							"The lower of this and what the provider announces (x-ratelimit-limit-requests) paces the calls.",
							&mana_ai_llm_requests_per_minute, 0, 0, INT_MAX,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("mana_ai.llm_tokens_per_minute",
							"The provider's tokens-per-minute limit the planner keeps (0: unknown).",
							"A request counts as its body's bytes / 4; the lower of this and what the provider announces (x-ratelimit-limit-tokens) paces the calls.",
							&mana_ai_llm_tokens_per_minute, 0, 0, INT_MAX,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("mana_ai.llm_max_response_size",
							"Largest LLM answer accepted.",
							"Times mana_ai.llm_max_parallel at most 256MB.",
							&mana_ai_llm_max_response_size, 1024, 1, 1024 * 1024,
							PGC_SIGHUP, GUC_UNIT_KB, check_llm_max_response_size, NULL, NULL);
	DefineCustomStringVariable("mana_ai.llm_key_file",
							   "File holding the LLM bearer key (empty: no Authorization header).",
							   NULL, &mana_ai_llm_key_file, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomStringVariable("mana_ai.private_key_file",
							   "PKCS#8 PEM file with the RSA key that unwraps mission grants.",
							   "Must not be readable by group or others.",
							   &mana_ai_private_key_file, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomIntVariable("mana_ai.max_attempts",
							"Consecutive planner failures for one due slot before a failed iteration is written.",
							NULL, &mana_ai_max_attempts, 3, 1, 100,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("mana_ai.max_iterations_kept",
							"Iterations a write-back keeps in a mission: the newest ones plus every one with a planned step.",
							"0 keeps all.",
							&mana_ai_max_iterations_kept, 0, 0, INT_MAX,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("mana_ai.timezone",
							   "Time zone in which daily, weekly and cron cadences are evaluated.",
							   NULL, &mana_ai_timezone, "UTC",
							   PGC_SIGHUP, 0, check_timezone_name, NULL, NULL);
	DefineCustomIntVariable("mana_ai.audit_retention",
							"Age after which decrypt_audit rows are deleted by the worker.",
							NULL, &mana_ai_audit_retention, 90 * 24 * 60, 60, INT_MAX / 2,
							PGC_SIGHUP, GUC_UNIT_MIN, NULL, NULL, NULL);
	DefineCustomIntVariable("mana_ai.tick_runs_retention",
							"Age after which tick_runs rows are deleted by the worker.",
							NULL, &mana_ai_tick_runs_retention, 14 * 24 * 60, 60, INT_MAX / 2,
							PGC_SIGHUP, GUC_UNIT_MIN, NULL, NULL, NULL);
	DefineCustomIntVariable("mana_ai.mission_runs_retention",
							"Age after which mission_runs rows are deleted by the worker.",
							NULL, &mana_ai_mission_runs_retention, 14 * 24 * 60, 60, INT_MAX / 2,
							PGC_SIGHUP, GUC_UNIT_MIN, NULL, NULL, NULL);

	/* Read by mana_ai.refresh_horizon() (SQL) through current_setting(). */
	DefineCustomIntVariable("mana_ai.late_row_window",
							"While the database has a subscription, how late after its created_at a replicated row may still arrive and be folded in.",
							"The refresh keeps re-reading this much of the log; 0 trusts created_at to be a local transaction start.",
							&mana_ai_late_row_window, 60, 0, INT_MAX / 1000,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);

	DefineCustomEnumVariable("mana_ai.planner_protocol",
							 "How the planner talks to the LLM: tools (function calling) or json (a fenced JSON plan).",
							 NULL, &mana_ai_planner_protocol, MANA_AI_PROTOCOL_TOOLS,
							 planner_protocol_options,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomEnumVariable("mana_ai.injection_policy",
							 "What a planned step whose parameters hold a prompt-injection marker becomes: "
							 "off (not checked), log (planned, logged and counted) or refuse (not planned; "
							 "the model is told why).",
							 NULL, &mana_ai_injection_policy, MANA_AI_INJECTION_LOG,
							 injection_policy_options,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("mana_ai.planner_core_modules",
							   "Modules whose tools every mission is offered in the tools protocol.",
							   "Besides them: the tools of the mission's input modules, the tools it used before, and more_tools for the rest the agent's policy allows.",
							   &mana_ai_planner_core_modules, "todo",
							   PGC_SIGHUP, 0, check_core_modules, NULL, NULL);
	DefineCustomIntVariable("mana_ai.planner_max_rounds",
							"Rounds of tool calls one mission's planner conversation may take (tools protocol).",
							NULL, &mana_ai_planner_max_rounds, 5, 1, 20,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("mana_ai.model_breaker_failures",
							"Failed calls in a row after which a model of mana_ai.llm_model is skipped for the rest of the tick.",
							"The rest of the tick goes straight to the next model of the chain; "
							"the last model is never skipped.  0 turns the breaker off.",
							&mana_ai_model_breaker_failures, 5, 0, 1000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("mana_ai.writeback_batch_size",
							"Most missions the worker writes back in one transaction.",
							"Each mission has its own subtransaction; past 64 in one transaction "
							"other sessions' snapshots overflow the subtransaction cache and read pg_subtrans.",
							&mana_ai_writeback_batch_size, 32, 1, 1000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("mana_ai.writeback_batch_time",
							"Longest time a finished plan waits for its write-back batch to commit (the worker streams its write-backs).",
							NULL, &mana_ai_writeback_batch_time, 100, 1, 60 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("mana_ai.refresh_lock_timeout",
							"Longest wait of a snapshot refresh for another one's locks.",
							"Past it the refresh fails, counted in mana_ai_lock_timeouts_total; the next tick tries again.",
							&mana_ai_refresh_lock_timeout, 30000, 1, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

	MarkGUCPrefixReserved("mana_ai");
}
