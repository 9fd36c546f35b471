/*
 * status.c: the worker's state as a row, for the mana_ai.status view.
 *
 * Owns reading ManaAiShared for SQL.  Must never return a key, a key
 * file's content, a credential in mana_ai.llm_url or anything a user
 * wrote.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "core/url_redact.h"
#include "ops/guc.h"
#include "ops/shmem.h"

#define STATUS_COLUMNS 12

PG_FUNCTION_INFO_V1(mana_ai_worker_state);
Datum
mana_ai_worker_state(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[STATUS_COLUMNS];
	bool		nulls[STATUS_COLUMNS];
	pid_t		launcher_pid = 0,
				worker_pid = 0;
	TimestampTz started = 0,
				finished = 0,
				next = 0;
	bool		extension_missing = false;
	Interval   *interval = palloc0(sizeof(Interval));

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	desc = BlessTupleDesc(desc);
	memset(nulls, 0, sizeof(nulls));

	if (mana_ai_shared != NULL)
	{
		LWLockAcquire(mana_ai_shared->lock, LW_SHARED);
		launcher_pid = mana_ai_shared->launcher_pid;
		worker_pid = mana_ai_shared->worker_pid;
		started = mana_ai_shared->last_tick_started_at;
		finished = mana_ai_shared->last_tick_finished_at;
		next = mana_ai_shared->next_tick_at;
		extension_missing = mana_ai_shared->extension_missing;
		LWLockRelease(mana_ai_shared->lock);
	}
	interval->time = (int64) mana_ai_tick_interval * USECS_PER_SEC;

	values[0] = Int32GetDatum(worker_pid);
	nulls[0] = worker_pid == 0;
	values[1] = Int32GetDatum(launcher_pid);
	nulls[1] = launcher_pid == 0;
	values[2] = BoolGetDatum(mana_ai_shared != NULL);
	values[3] = BoolGetDatum(mana_ai_enabled);
	values[4] = CStringGetTextDatum(mana_ai_database);
	values[5] = IntervalPGetDatum(interval);
	values[6] = TimestampTzGetDatum(started);
	nulls[6] = started == 0;
	values[7] = TimestampTzGetDatum(finished);
	nulls[7] = finished == 0;
	values[8] = TimestampTzGetDatum(next);
	nulls[8] = next == 0;
	values[9] = BoolGetDatum(extension_missing);
	/* Only whether grants can be unwrapped; never the path or the key. */
	values[10] = BoolGetDatum(mana_ai_private_key_file != NULL && mana_ai_private_key_file[0] != '\0');
	/* Never a user:password or a query string the URL may carry. */
	{
		size_t		size = URL_REDACT_SIZE(strlen(mana_ai_llm_url));

		values[11] = CStringGetTextDatum(url_redact(mana_ai_llm_url, palloc(size), size));
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
