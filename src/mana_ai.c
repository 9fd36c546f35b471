/*
 * mana_ai.c: library entry point.
 *
 * _PG_init defines the parameters (so the SQL surface works in any
 * backend) and, only when loaded through shared_preload_libraries,
 * requests shared memory, registers the background worker and installs
 * the hook that lets a DROP DATABASE send the worker away.  It must
 * never do work of its own.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"

#include "ops/drop_database.h"
#include "ops/guc.h"
#include "ops/metrics.h"
#include "ops/shmem.h"
#include "worker.h"

PG_MODULE_MAGIC;

/* The metrics' counters live beside ManaAiShared, requested in the same call. */
static const ManaAiShmemPart metrics_shmem = {
	mana_ai_metrics_shmem_size,
	mana_ai_metrics_shmem_attach
};

void		_PG_init(void);

void
_PG_init(void)
{
	mana_ai_define_gucs();

	if (!process_shared_preload_libraries_in_progress)
		return;

	mana_ai_shmem_init(&metrics_shmem);
	mana_ai_worker_register();
	mana_ai_drop_database_hook_install();
}
