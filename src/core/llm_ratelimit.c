/*
 * llm_ratelimit.c: the pacing of the LLM client by a provider's rate
 * limits (llm_ratelimit.h), Postgres-free.
 *
 * Owns the buckets, the window of requests in flight and the pause after
 * a 429; decides, never sleeps.  Must never let the window fall below one
 * (a batch always progresses), never trust an announced figure that is not
 * a finite non-negative number, and never pause longer than a minute on
 * one answer's word.
 */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "llm_ratelimit.h"

#define MAX_PAUSE_S 60.0
#define MAX_LOOK_S 1.0

static double
min_known(double a, double b)
{
	if (a <= 0)
		return b > 0 ? b : 0;
	if (b <= 0)
		return a;
	return a < b ? a : b;
}

double
llm_rl_rpm(const LlmRateLimit *rl)
{
	double		told = min_known(rl->cfg_rpm, rl->ann_rpm);

	return told > 0 ? told : rl->learnt_rpm;
}

double
llm_rl_tpm(const LlmRateLimit *rl)
{
	double		told = min_known(rl->cfg_tpm, rl->ann_tpm);

	return told > 0 ? told : rl->learnt_tpm;
}

/* The ring of the last minute at second now: stale slots emptied. */
static void
ring_advance(LlmRateLimit *rl, double now)
{
	int64_t		sec = (int64_t) floor(now);

	if (sec - rl->ring_sec >= 60)
	{
		memset(rl->ring_req, 0, sizeof(rl->ring_req));
		memset(rl->ring_tok, 0, sizeof(rl->ring_tok));
		rl->ring_since = now;
	}
	else
		for (int64_t s = rl->ring_sec + 1; s <= sec; s++)
			rl->ring_req[s % 60] = rl->ring_tok[s % 60] = 0;
	if (sec > rl->ring_sec)
		rl->ring_sec = sec;
}

/* A 429 with neither limit known: learn one from the last minute. */
static void
learn_from_429(LlmRateLimit *rl, double now)
{
	double		req = 0,
				tok = 0,
				span;

	ring_advance(rl, now);
	for (int i = 0; i < 60; i++)
		req += rl->ring_req[i], tok += rl->ring_tok[i];
	if (req < 1 && rl->learnt_rpm <= 0)
		return;					/* nothing sent: nothing to learn from */
	/* what was sent, as a rate per minute (a first burst counts as one) */
	span = now - rl->ring_since;
	span = span < 1 ? 1 : span > 60 ? 60 : span;
	req *= 60.0 / span;
	tok *= 60.0 / span;
	if (min_known(rl->cfg_rpm, rl->ann_rpm) <= 0)
		rl->learnt_rpm = rl->learnt_rpm > 0 ? fmax(1, rl->learnt_rpm * 0.7) : fmax(1, req);
	if (min_known(rl->cfg_tpm, rl->ann_tpm) <= 0)
		rl->learnt_tpm = rl->learnt_tpm > 0 ? fmax(1, rl->learnt_tpm * 0.7) : fmax(1, tok);
}

static double
jitter01(LlmRateLimit *rl)
{
	rl->rng ^= rl->rng >> 12;
	rl->rng ^= rl->rng << 25;
	rl->rng ^= rl->rng >> 27;
	return ((rl->rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

/* Refill both buckets up to one minute's worth. */
static void
refill(LlmRateLimit *rl, double now)
{
	double		rpm = llm_rl_rpm(rl),
				tpm = llm_rl_tpm(rl),
				dt = now - rl->at;

	if (dt <= 0)
		return;
	rl->at = now;
	/* A learnt limit creeps up again, 5 % a minute, to find a raised one,
	 * and is forgotten after a minute in which it neither met a 429 nor
	 * held a call back (it was a fault's or a burst's, not the pace's). */
	rl->learnt_rpm *= 1.0 + 0.05 * dt / 60.0;
	rl->learnt_tpm *= 1.0 + 0.05 * dt / 60.0;
	if (now - rl->last_429 > 60.0 && now - rl->last_bound > 60.0)
		rl->learnt_rpm = rl->learnt_tpm = 0;
	if (rpm > 0 && (rl->req += dt * rpm / 60.0) > rpm)
		rl->req = rpm;
	if (tpm > 0 && (rl->tok += dt * tpm / 60.0) > tpm)
		rl->tok = tpm;
}

void
llm_rl_configure(LlmRateLimit *rl, double rpm, double tpm, int max_parallel,
				 double now)
{
	if (!rl->initialized)
	{
		memset(rl, 0, sizeof(*rl));
		rl->initialized = true;
		rl->blocked = LLM_LIMIT_NONE;
		rl->rng = 0x9E3779B97F4A7C15ULL ^ (uint64_t) (now * 1e6);
		rl->window = max_parallel > 0 ? max_parallel : 1;
		rl->at = now;
		rl->ring_sec = (int64_t) floor(now);
		rl->ring_since = now;
		rl->req = rpm > 0 ? rpm : 0;
		rl->tok = tpm > 0 ? tpm : 0;
	}
	refill(rl, now);
	rl->cfg_rpm = rpm > 0 ? rpm : 0;
	rl->cfg_tpm = tpm > 0 ? tpm : 0;
	rl->max_parallel = max_parallel > 0 ? max_parallel : 1;
	if (rl->window > rl->max_parallel)
		rl->window = rl->max_parallel;
	/* A cap lowered below what the bucket holds takes effect at once. */
	if (llm_rl_rpm(rl) > 0 && rl->req > llm_rl_rpm(rl))
		rl->req = llm_rl_rpm(rl);
	if (llm_rl_tpm(rl) > 0 && rl->tok > llm_rl_tpm(rl))
		rl->tok = llm_rl_tpm(rl);
}

static void
note_blocked(LlmRateLimit *rl, double now, LlmLimitReason why)
{
	if (rl->blocked != LLM_LIMIT_NONE && now > rl->blocked_since)
		rl->wait_seconds[rl->blocked] += now - rl->blocked_since;
	rl->blocked = why;
	rl->blocked_since = now;
}

void
llm_rl_unblocked(LlmRateLimit *rl, double now)
{
	note_blocked(rl, now, LLM_LIMIT_NONE);
}

bool
llm_rl_admit(LlmRateLimit *rl, double now, int in_flight, double tokens,
			 double *wait_s)
{
	double		rpm,
				tpm,
				wait = 0;
	LlmLimitReason why = LLM_LIMIT_NONE;

	refill(rl, now);
	rpm = llm_rl_rpm(rl);
	tpm = llm_rl_tpm(rl);
	/* A request larger than a minute's tokens waits for a full bucket. */
	if (tpm > 0 && tokens > tpm)
		tokens = tpm;
	if (now < rl->pause_until)
	{
		why = LLM_LIMIT_RETRY_AFTER;
		wait = rl->pause_until - now;
	}
	else if (in_flight >= (int) rl->window && in_flight > 0)
	{
		why = LLM_LIMIT_CONCURRENCY;
		wait = MAX_LOOK_S;		/* an answer wakes the caller earlier */
	}
	else if (rpm > 0 && rl->req < 1)
	{
		why = LLM_LIMIT_REQUESTS;
		wait = (1 - rl->req) * 60.0 / rpm;
	}
	else if (tpm > 0 && rl->tok < tokens)
	{
		why = LLM_LIMIT_TOKENS;
		wait = (tokens - rl->tok) * 60.0 / tpm;
	}
	if ((why == LLM_LIMIT_REQUESTS && min_known(rl->cfg_rpm, rl->ann_rpm) <= 0) ||
		(why == LLM_LIMIT_TOKENS && min_known(rl->cfg_tpm, rl->ann_tpm) <= 0))
		rl->last_bound = now;	/* a learnt limit paces: keep it */
	note_blocked(rl, now, why);
	if (why == LLM_LIMIT_NONE)
		return true;
	if (wait_s)
		*wait_s = wait > MAX_LOOK_S ? MAX_LOOK_S : wait;
	return false;
}

void
llm_rl_sent(LlmRateLimit *rl, double now, double tokens)
{
	refill(rl, now);
	ring_advance(rl, now);
	rl->ring_req[rl->ring_sec % 60] += 1;
	rl->ring_tok[rl->ring_sec % 60] += tokens;
	if (llm_rl_rpm(rl) > 0)
		rl->req -= 1;
	if (llm_rl_tpm(rl) > 0)
		rl->tok -= tokens > llm_rl_tpm(rl) ? llm_rl_tpm(rl) : tokens;
}

static bool
usable(double v)
{
	return isfinite(v) && v >= 0;
}

void
llm_rl_announce(LlmRateLimit *rl, double now, double limit_req, double limit_tok,
				double remaining_req, double remaining_tok,
				double reset_req_s, double reset_tok_s)
{
	refill(rl, now);
	if (usable(limit_req) && limit_req > 0)
		rl->ann_rpm = limit_req, rl->learnt_rpm = 0;
	if (usable(limit_tok) && limit_tok > 0)
		rl->ann_tpm = limit_tok, rl->learnt_tpm = 0;

	/*
	 * The provider's remaining count is the truth as of its answer; ours
	 * may be higher (it started full, or another client shares the key).
	 * Never raise ours on its word: answers arrive out of order.
	 */
	if (usable(remaining_req) && llm_rl_rpm(rl) > 0 && remaining_req < rl->req)
		rl->req = remaining_req;
	if (usable(remaining_tok) && llm_rl_tpm(rl) > 0 && remaining_tok < rl->tok)
		rl->tok = remaining_tok;
	(void) reset_req_s;
	(void) reset_tok_s;
}

void
llm_rl_success(LlmRateLimit *rl)
{
	rl->window += 1.0 / (rl->window > 1 ? rl->window : 1);

	if (rl->window > rl->max_parallel)
		rl->window = rl->max_parallel;
}

double
llm_rl_rate_limited(LlmRateLimit *rl, double now, double retry_after_s, double reset_s)
{
	double		pause;

	refill(rl, now);
	rl->rate_limited++;
	rl->last_429 = now;
	if (now - rl->last_decrease >= 1.0)
	{
		if (min_known(rl->cfg_rpm, rl->ann_rpm) <= 0 || min_known(rl->cfg_tpm, rl->ann_tpm) <= 0)
			learn_from_429(rl, now);
		rl->window = floor(rl->window / 2);
		if (rl->window < 1)
			rl->window = 1;
		rl->last_decrease = now;
	}
	/* The provider's bucket is empty: so is ours. */
	if (llm_rl_rpm(rl) > 0 && rl->req > 0)
		rl->req = 0;
	if (llm_rl_tpm(rl) > 0 && rl->tok > 0)
		rl->tok = 0;
	pause = usable(retry_after_s) && retry_after_s > 0 ? retry_after_s :
		usable(reset_s) && reset_s > 0 ? reset_s : 1.0;
	if (pause > MAX_PAUSE_S)
		pause = MAX_PAUSE_S;
	pause *= 1.0 + 0.25 * jitter01(rl);
	if (now + pause > rl->pause_until)
		rl->pause_until = now + pause;
	return rl->pause_until - now;
}

const char *
llm_rl_reason_name(LlmLimitReason reason)
{
	switch (reason)
	{
		case LLM_LIMIT_REQUESTS:
			return "requests";
		case LLM_LIMIT_TOKENS:
			return "tokens";
		case LLM_LIMIT_CONCURRENCY:
			return "concurrency";
		case LLM_LIMIT_RETRY_AFTER:
			return "retry_after";
		default:
			return "none";
	}
}

double
llm_rl_parse_duration(const char *text)
{
	const char *p = text;
	double		total = 0;
	bool		any = false;

	if (text == NULL)
		return -1;
	while (isspace((unsigned char) *p))
		p++;
	while (*p && !isspace((unsigned char) *p))
	{
		char	   *end;
		double		v = strtod(p, &end);

		if (end == p || !isfinite(v) || v < 0)
			return -1;
		p = end;
		if (strncmp(p, "ms", 2) == 0)
		{
			total += v / 1000.0;
			p += 2;
		}
		else if (*p == 'h')
		{
			total += v * 3600;
			p++;
		}
		else if (*p == 'm')
		{
			total += v * 60;
			p++;
		}
		else if (*p == 's')
		{
			total += v;
			p++;
		}
		else if (*p == '\0' || isspace((unsigned char) *p))
			total += v;			/* plain seconds */
		else
			return -1;
		any = true;
	}
	while (isspace((unsigned char) *p))
		p++;
	return any && *p == '\0' ? total : -1;
}
