/*
 * shmem.h: state shared between the launcher, the tick worker and every
 * backend (status view, metrics).  Present only when mana_ai is in
 * shared_preload_libraries; mana_ai_shared is NULL otherwise.
 */
#ifndef MANA_AI_SHMEM_H
#define MANA_AI_SHMEM_H

#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/lwlock.h"

typedef struct ManaAiShared
{
	LWLock	   *lock;			/* protects the fields below the atomics */
	pid_t		launcher_pid;
	pid_t		worker_pid;
	TimestampTz worker_started_at;
	TimestampTz last_tick_started_at;
	TimestampTz last_tick_finished_at;
	TimestampTz next_tick_at;
	bool		extension_missing;	/* worker is waiting for CREATE EXTENSION */
	/* set by DROP DATABASE of the worker's database: the worker must leave */
	pg_atomic_uint32 leave_database;
} ManaAiShared;

extern ManaAiShared *mana_ai_shared;

/*
 * A module's own part of the shared memory: its size, added to the
 * request, and its attach, called at startup under AddinShmemInitLock
 * once mana_ai_shared is set.  _PG_init passes the metrics' part in.
 */
typedef struct ManaAiShmemPart
{
	Size		(*size) (void);
	void		(*attach) (void);
} ManaAiShmemPart;

/* _PG_init, when preloaded: hook the request and the startup of ManaAiShared and part. */
extern void mana_ai_shmem_init(const ManaAiShmemPart *part);

#endif
