/*
 * llm.c: the planner's LLM calls from inside PostgreSQL (SPEC 8), and the
 * diagnostic SQL function mana_ai.llm_test_call().
 *
 * Owns reading the bearer key (mana_ai.llm_key_file, refused when group or
 * others can read it, as the server refuses such an ssl_key_file), driving
 * src/core/llm_client.c in 100 ms steps with CHECK_FOR_INTERRUPTS in
 * between, and copying results into palloc'd memory.  Must never log,
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

#include "core/llm_client.h"
#include "guc.h"
#include "llm.h"
#include "metrics.h"

#define KEY_MAX_LEN 4096
#define STEP_WAIT_MS 100
#define TEST_CALL_MAX_COPIES 1000

static void read_key_file(const char *path, char *key, size_t keysize);
static void fill_config(LlmClientConfig *cfg);
static void run_batch(LlmBatch *volatile *batchp);
static void copy_results(LlmCall *calls, LlmRequest *reqs, int ncalls);

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

static void
fill_config(LlmClientConfig *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->url = mana_ai_llm_url;
	cfg->model = mana_ai_llm_model;
	cfg->temperature = mana_ai_llm_temperature;
	cfg->connect_timeout_ms = mana_ai_llm_connect_timeout;
	cfg->timeout_ms = mana_ai_llm_timeout;
	cfg->max_response_bytes = (size_t) mana_ai_llm_max_response_size * 1024;
	cfg->max_parallel = mana_ai_llm_max_parallel;
	cfg->max_attempts = 0;		/* the client's default; the deadline rules */
}

/*
 * Step the batch until every call has its result.  Between steps the
 * usual interrupt processing runs; when it raises, the caller's PG_CATCH
 * frees the batch, which closes every connection still open.  A pending
 * SIGTERM turns into FATAL (proc_exit, no PG_CATCH), so the batch is
 * freed first.
 */
static void
run_batch(LlmBatch *volatile *batchp)
{
	while (!llm_batch_step(*batchp, STEP_WAIT_MS))
	{
		if (ProcDiePending || !PostmasterIsAlive())
		{
			llm_batch_free(*batchp);
			*batchp = NULL;
			if (!PostmasterIsAlive())
				ereport(FATAL,
						(errcode(ERRCODE_ADMIN_SHUTDOWN),
						 errmsg("terminating because the postmaster died during LLM calls")));
			CHECK_FOR_INTERRUPTS();
			/* Interrupts held off: the calls are aborted, report them so. */
			return;
		}
		CHECK_FOR_INTERRUPTS();
	}
	llm_batch_free(*batchp);
	*batchp = NULL;
}

/* Move the client's malloc'd results into palloc'd LlmCall fields. */
static void
copy_results(LlmCall *calls, LlmRequest *reqs, int ncalls)
{
	int			i;

	for (i = 0; i < ncalls; i++)
	{
		LlmCall    *c = &calls[i];
		LlmRequest *r = &reqs[i];

		c->ok = r->ok;
		c->total_tokens = r->total_tokens;
		c->http_status = r->http_status;
		c->attempts = r->attempts;
		c->seconds = r->seconds;
		c->content = NULL;
		c->error = NULL;
		if (r->ok && r->content)
		{
			c->content = pstrdup(r->content);
			free(r->content);
			r->content = NULL;
			if (!pg_verify_mbstr(PG_UTF8, c->content, strlen(c->content), true))
			{
				c->ok = false;
				pfree(c->content);
				c->content = NULL;
				c->error = pstrdup("answer is not valid UTF-8");
			}
		}
		else if (!r->ok)
			c->error = pstrdup(r->error[0] ? r->error : "failed");
		if (r->attempts > 0)
			mana_ai_metric_observe(MH_PLANNER_REQUEST_DURATION, r->seconds);
	}
	/* Conversion may raise; every malloc'd byte is already freed. */
	for (i = 0; i < ncalls; i++)
		if (calls[i].content)
			calls[i].content = pg_any_to_server(calls[i].content,
												strlen(calls[i].content), PG_UTF8);
}

void
mana_ai_llm_complete(LlmCall *calls, int ncalls)
{
	LlmRequest *reqs;
	LlmClientConfig cfg;
	char		key[KEY_MAX_LEN + 1];
	char		err[LLM_ERROR_LEN];
	LlmBatch   *volatile batch = NULL;
	int			i;

	if (ncalls <= 0)
		return;
	reqs = palloc0(sizeof(LlmRequest) * ncalls);
	for (i = 0; i < ncalls; i++)
	{
		reqs[i].system = calls[i].system;
		reqs[i].user = calls[i].user;
	}
	fill_config(&cfg);
	key[0] = '\0';

	PG_TRY();
	{
		if (mana_ai_llm_key_file && mana_ai_llm_key_file[0])
			read_key_file(mana_ai_llm_key_file, key, sizeof(key));
		cfg.api_key = key;
		batch = llm_batch_create(&cfg, reqs, ncalls, err, sizeof(err));
		explicit_bzero(key, sizeof(key));
		if (batch == NULL)
		{
			for (i = 0; i < ncalls; i++)
				snprintf(reqs[i].error, LLM_ERROR_LEN, "%s", err);
		}
		else
			run_batch(&batch);	/* frees the batch and clears batch */
	}
	PG_CATCH();
	{
		explicit_bzero(key, sizeof(key));
		if (batch != NULL)
			llm_batch_free(batch);	/* aborts what is in flight */
		for (i = 0; i < ncalls; i++)
			llm_request_clear(&reqs[i]);
		PG_RE_THROW();
	}
	PG_END_TRY();

	copy_results(calls, reqs, ncalls);
	pfree(reqs);
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
	mana_ai_llm_complete(calls, copies);

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
