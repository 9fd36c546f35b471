/*
 * audit_guard.h: the append-only guard of decrypt_audit (SPEC 5.4) and
 * mission_runs (issue 19).
 */
#ifndef MANA_AI_AUDIT_GUARD_H
#define MANA_AI_AUDIT_GUARD_H

#include "postgres.h"

/* Lift (true) or restore (false) the guard, for the retention path only. */
extern void mana_ai_audit_guard_lift(bool lifted);

#endif
