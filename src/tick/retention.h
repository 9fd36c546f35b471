/*
 * retention.h: age-based cleanup of mana_ai's own tables, run by the worker.
 */
#ifndef MANA_AI_RETENTION_H
#define MANA_AI_RETENTION_H

extern void mana_ai_run_retention(void);

#endif
