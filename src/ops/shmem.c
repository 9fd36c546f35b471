/*
 * shmem.c: requests and attaches mana_ai's shared memory.
 *
 * Owns the ManaAiShared struct's lifetime, and requests and attaches the
 * one part _PG_init hands it (the metrics), so this file calls no module
 * above it.  Must never allocate shared memory outside the request hook:
 * the size is fixed at server start.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"

#include "ops/shmem.h"

ManaAiShared *mana_ai_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static const ManaAiShmemPart *shmem_part = NULL;

static void mana_ai_shmem_request(void);
static void mana_ai_shmem_startup(void);

void
mana_ai_shmem_init(const ManaAiShmemPart *part)
{
	shmem_part = part;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = mana_ai_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = mana_ai_shmem_startup;
}

static void
mana_ai_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(ManaAiShared)) +
						   (shmem_part ? shmem_part->size() : 0));
	RequestNamedLWLockTranche("mana_ai", 1);
}

static void
mana_ai_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	mana_ai_shared = ShmemInitStruct("mana_ai", sizeof(ManaAiShared), &found);
	if (!found)
	{
		memset(mana_ai_shared, 0, sizeof(ManaAiShared));
		mana_ai_shared->lock = &(GetNamedLWLockTranche("mana_ai"))->lock;
		pg_atomic_init_u32(&mana_ai_shared->leave_database, 0);
	}
	if (shmem_part)
		shmem_part->attach();
	LWLockRelease(AddinShmemInitLock);
}
