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
extern int	mana_ai_llm_timeout;	/* milliseconds, a mission's whole loop */
extern int	mana_ai_llm_connect_timeout;	/* milliseconds */
extern int	mana_ai_llm_max_parallel;
extern int	mana_ai_llm_requests_per_minute;
extern int	mana_ai_llm_tokens_per_minute;
extern char *mana_ai_planner_core_modules;
extern int	mana_ai_llm_max_response_size;	/* kilobytes */
extern char *mana_ai_llm_key_file;
extern char *mana_ai_private_key_file;
extern int	mana_ai_max_attempts;
extern int	mana_ai_max_iterations_kept;
extern char *mana_ai_timezone;
extern int	mana_ai_audit_retention;	/* minutes */
extern int	mana_ai_tick_runs_retention;	/* minutes */
extern int	mana_ai_writeback_batch_size;	/* missions per write-back transaction */
extern int	mana_ai_writeback_batch_time;	/* milliseconds */
extern int	mana_ai_refresh_lock_timeout;	/* milliseconds */
extern int	mana_ai_mission_runs_retention;	/* minutes */
extern int	mana_ai_late_row_window;	/* seconds, read by refresh_horizon() */

extern int	mana_ai_planner_protocol;	/* MANA_AI_PROTOCOL_* */
extern int	mana_ai_planner_max_rounds;
extern int	mana_ai_model_breaker_failures;
extern int	mana_ai_injection_policy;	/* MANA_AI_INJECTION_* */

/* mana_ai.injection_policy; the values of core/injection.h's InjectionPolicy */
#define MANA_AI_INJECTION_OFF 0
#define MANA_AI_INJECTION_LOG 1
#define MANA_AI_INJECTION_REFUSE 2
#define MANA_AI_PROTOCOL_TOOLS 0
#define MANA_AI_PROTOCOL_JSON 1

/* mana_ai.llm_model is a chain of at most this many names. */
#define MANA_AI_MAX_MODELS 8
#define MANA_AI_MODEL_NAME_LEN 128

/* Split a chain into names (trimmed); its length, or -1 when invalid. */
extern int	mana_ai_llm_model_chain(const char *value,
									char names[][MANA_AI_MODEL_NAME_LEN]);

extern void mana_ai_define_gucs(void);

#endif
