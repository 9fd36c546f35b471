/*
 * guc.h: the mana_ai.* configuration parameters.
 *
 * Every parameter is PGC_POSTMASTER or PGC_SIGHUP: an ordinary session can
 * never point the runner at another LLM or make it read another file.
 */
#ifndef MANA_AI_GUC_H
#define MANA_AI_GUC_H

#include <stdbool.h>

extern char *mana_ai_database;		/* PGC_POSTMASTER */
extern char *mana_ai_role;			/* PGC_POSTMASTER, "" = bootstrap superuser */
extern bool mana_ai_enabled;
extern int	mana_ai_tick_interval;	/* seconds */
extern char *mana_ai_llm_url;
extern char *mana_ai_llm_model;
extern double mana_ai_llm_temperature;
extern int	mana_ai_llm_timeout;	/* milliseconds, whole request */
extern int	mana_ai_llm_connect_timeout;	/* milliseconds */
extern int	mana_ai_llm_max_parallel;
extern int	mana_ai_llm_max_response_size;	/* kilobytes */
extern char *mana_ai_llm_key_file;
extern char *mana_ai_private_key_file;
extern int	mana_ai_max_attempts;
extern char *mana_ai_timezone;
extern int	mana_ai_audit_retention;	/* minutes */
extern int	mana_ai_tick_runs_retention;	/* minutes */
extern int	mana_ai_writeback_batch_size;	/* missions per write-back transaction */
extern int	mana_ai_writeback_batch_time;	/* milliseconds */

extern void mana_ai_define_gucs(void);

#endif
