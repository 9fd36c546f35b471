/*
 * test_llm_ratelimit.c: the pacing of src/core/llm_ratelimit.c against a
 * simulated provider (the same token buckets bench/mock_llm.c keeps), on
 * a simulated clock: configured limits are kept without a 429; unknown
 * limits are learnt from the headers and a 429 without a storm; the
 * durations OpenAI sends parse.  Then through the client against
 * tests/mock_llm.py: 429s pause and shrink the window and every call ends
 * well; an empty requests bucket holds calls back until it refills.
 */
#include <math.h>

#include "llm_client.h"
#include "llm_ratelimit.h"
#include "mock_llm.h"
#include "tap.h"

/* The provider: requests and tokens per minute, buckets full at start. */
typedef struct Provider
{
	double		rpm, tpm, req, tok, at;
} Provider;

static void
prov_refill(Provider *p, double now)
{
	double		dt = now - p->at;

	p->at = now;
	p->req = fmin(p->rpm, p->req + dt * p->rpm / 60);
	p->tok = fmin(p->tpm, p->tok + dt * p->tpm / 60);
}

/* true: accepted (debited); false: 429 with *retry_after */
static bool
prov_take(Provider *p, double now, double tokens, double *retry_after)
{
	prov_refill(p, now);
	if (p->req < 1 || p->tok < tokens)
	{
		double		wr = p->req < 1 ? (1 - p->req) * 60 / p->rpm : 0;
		double		wt = p->tok < tokens ? (tokens - p->tok) * 60 / p->tpm : 0;

		*retry_after = ceil(fmax(wr, wt));
		return false;
	}
	p->req -= 1;
	p->tok -= tokens;
	return true;
}

typedef struct SimResult
{
	double		finished_at;
	int			sent, n429, n429_after_minute, max_in_flight;
	double		max_starts_in_100ms;
} SimResult;

/*
 * n requests of `tokens` each, `parallel` at most, each answered after
 * `latency` s, through rl against p (announce: the answers carry the
 * x-ratelimit headers).  A 429 is retried after the pause it yields.
 */
static SimResult
simulate(LlmRateLimit *rl, Provider *p, int n, double tokens, int parallel,
		 double latency, bool announce)
{
	SimResult	r = {0};
	double		done_at[4096];
	double		retry_at[4096];
	int			state[4096];	/* 0 queued, 1 in flight, 2 done */
	int			left = n, in_flight = 0;
	double		now = 0, step = 0.01;
	double		window_start = 0;
	int			window_starts = 0;

	for (int i = 0; i < n; i++)
		state[i] = 0, retry_at[i] = 0;
	while (left > 0 && now < 3600)
	{
		for (int i = 0; i < n; i++)
			if (state[i] == 1 && done_at[i] <= now)
			{
				double		ra;

				in_flight--;
				if (prov_take(p, done_at[i] - latency, tokens, &ra))
				{
					state[i] = 2;
					left--;
					llm_rl_success(rl);
					if (announce)
						llm_rl_announce(rl, now, p->rpm, p->tpm, p->req, p->tok, -1, -1);
				}
				else
				{
					r.n429++;
					if (now >= 60)
						r.n429_after_minute++;
					if (announce)
						llm_rl_announce(rl, now, p->rpm, p->tpm, p->req, p->tok, -1, -1);
					retry_at[i] = now + llm_rl_rate_limited(rl, now, ra, -1);
					state[i] = 0;
				}
			}
		for (int i = 0; i < n && in_flight < parallel; i++)
		{
			double		wait;

			if (state[i] != 0 || retry_at[i] > now)
				continue;
			if (!llm_rl_admit(rl, now, in_flight, tokens, &wait))
				break;
			llm_rl_sent(rl, now, tokens);
			state[i] = 1;
			done_at[i] = now + latency;
			in_flight++;
			r.sent++;
			if (now - window_start >= 0.1)
				window_start = now, window_starts = 0;
			if (++window_starts > r.max_starts_in_100ms)
				r.max_starts_in_100ms = window_starts;
		}
		if (in_flight > r.max_in_flight)
			r.max_in_flight = in_flight;
		now += step;
	}
	r.finished_at = now;
	return r;
}

/* The client with a limiter against the mock. */
static void
test_client(void)
{
	LlmClientConfig c = {0};
	LlmRequest	reqs[12];
	LlmRateLimit rl = {0};
	int			all_ok = 1;

	c.url = mock_url;
	c.model = "gpt-4o-mini";
	c.connect_timeout_ms = 2000;
	c.timeout_ms = 20000;
	c.max_parallel = 8;
	c.limit = &rl;
	memset(reqs, 0, sizeof(reqs));
	for (int i = 0; i < 12; i++)
		reqs[i].system = "s", reqs[i].user = "u";

	/* the first 4 answers are 429 with Retry-After: 1 */
	mock_reset();
	mock_control("{\"mode\":\"429-n-then-ok\",\"fail_n\":4,\"retry_after\":1}");
	llm_rl_configure(&rl, 0, 0, 8, llm_monotonic_seconds());
	ok(llm_client_run(&c, reqs, 12, NULL, NULL) == 0, "a batch with 429s finishes");
	for (int i = 0; i < 12; i++)
		all_ok &= reqs[i].ok;
	ok(all_ok, "every call ends well after the pause");
	ok(rl.rate_limited == 4, "the 429s are counted (%lld)", (long long) rl.rate_limited);
	ok(rl.wait_seconds[LLM_LIMIT_RETRY_AFTER] > 0.5, "the pause was waited out (%.2f s)",
	   rl.wait_seconds[LLM_LIMIT_RETRY_AFTER]);
	ok(mock_stat("requests") == 16, "no request beyond the 4 retries (%d)", mock_stat("requests"));
	for (int i = 0; i < 12; i++)
		llm_request_clear(&reqs[i]);

	/* 120 requests a minute, the bucket spent: calls wait for it */
	{
		LlmRateLimit r2 = {0};
		double		now = llm_monotonic_seconds();

		mock_reset();
		llm_rl_configure(&r2, 120, 0, 8, now);
		for (int i = 0; i < 120; i++)
			llm_rl_sent(&r2, now, 1);
		c.limit = &r2;
		ok(llm_client_run(&c, reqs, 3, NULL, NULL) == 0 && reqs[0].ok && reqs[1].ok && reqs[2].ok,
		   "paced calls end well");
		ok(r2.wait_seconds[LLM_LIMIT_REQUESTS] > 0.5, "they waited for the requests bucket (%.2f s)",
		   r2.wait_seconds[LLM_LIMIT_REQUESTS]);
		for (int i = 0; i < 3; i++)
			llm_request_clear(&reqs[i]);
	}
}

int
main(void)
{
	/* 1. Known limits (the GUCs): kept, no 429, close to the floor. */
	{
		LlmRateLimit rl = {0};
		Provider	p = {1000, 6000000, 1000, 6000000, 0};
		SimResult	r;
		double		floor;

		llm_rl_configure(&rl, 1000, 6000000, 32, 0);
		r = simulate(&rl, &p, 2000, 9000, 32, 0.2, false);
		/* 18M tokens, 6M in the full bucket: 12M more at 6M/min */
		floor = (2000 * 9000.0 - 6000000) / 6000000 * 60;
		ok(r.n429 == 0, "configured limits: no 429 (%d)", r.n429);
		ok(r.finished_at <= floor * 1.05 + 1, "configured limits: %.1f s for a floor of %.1f s",
		   r.finished_at, floor);
		ok(r.finished_at >= floor * 0.95, "configured limits: not faster than the provider allows (%.1f s)",
		   r.finished_at);
		ok(rl.wait_seconds[LLM_LIMIT_TOKENS] > floor * 0.5,
		   "the time blocked on tokens is counted (%.1f s)", rl.wait_seconds[LLM_LIMIT_TOKENS]);
	}

	/* 2. Unknown limits, announced in every answer: learnt, few 429s. */
	{
		LlmRateLimit rl = {0};
		Provider	p = {1000, 6000000, 1000, 6000000, 0};
		SimResult	r;

		llm_rl_configure(&rl, 0, 0, 32, 0);
		r = simulate(&rl, &p, 2000, 9000, 32, 0.2, true);
		ok(llm_rl_tpm(&rl) == 6000000 && llm_rl_rpm(&rl) == 1000, "announced limits adopted");
		ok(r.n429 <= 2000 / 100, "announced limits: at most 1 %% 429s (%d of %d)", r.n429, r.sent);
		ok(r.n429_after_minute == 0, "no 429 after the first minute (%d)", r.n429_after_minute);
	}

	/* 3. Unknown limits, no headers: a 429 pauses and halves, no storm. */
	{
		LlmRateLimit rl = {0};
		Provider	p = {100000, 600000, 100000, 600000, 0};
		SimResult	r;

		llm_rl_configure(&rl, 0, 0, 32, 0);
		r = simulate(&rl, &p, 400, 9000, 32, 0.2, false);
		ok(r.n429 <= r.sent / 5 && r.n429_after_minute <= r.sent / 100,
		   "without headers: %d requests for 400, 429s %d, %d after the first minute (at most 1 %%)",
		   r.sent, r.n429, r.n429_after_minute);
		ok(llm_rl_tpm(&rl) > 0 && llm_rl_tpm(&rl) <= 600000 * 1.2,
		   "a tokens-per-minute limit was learnt (%.0f for 600000)", llm_rl_tpm(&rl));
		ok(rl.window >= 1, "the window never falls below 1");
		{
			double		wait;

			ok(llm_rl_admit(&rl, r.finished_at + 61, 0, 9000, &wait) && llm_rl_tpm(&rl) == 0,
			   "a learnt limit is forgotten after a minute without a 429 or a call held back");
		}
	}

	/* 4. After a 429 nothing starts before the pause, then one by one. */
	{
		LlmRateLimit rl = {0};
		double		pause, wait = 0;
		int			started = 0;

		llm_rl_configure(&rl, 60, 0, 32, 0);
		for (int i = 0; i < 60; i++)
			llm_rl_sent(&rl, 0, 10);
		pause = llm_rl_rate_limited(&rl, 0, 2, -1);
		ok(pause >= 2 && pause <= 2.5, "pause = Retry-After plus up to a quarter (%.2f)", pause);
		ok(!llm_rl_admit(&rl, pause - 0.01, 0, 10, &wait), "held until the pause ends");
		for (double t = pause; t < pause + 0.5; t += 0.01)
			if (llm_rl_admit(&rl, t, 0, 10, &wait))
			{
				llm_rl_sent(&rl, t, 10);
				started++;
			}
		ok(started <= 3, "after the pause the bucket paces: %d in 0.5 s at 60/min", started);
		{
			LlmRateLimit a = {0}, b = {0};
			double		pa, pb;

			llm_rl_configure(&a, 0, 0, 8, 1);
			llm_rl_configure(&b, 0, 0, 8, 2);
			pa = llm_rl_rate_limited(&a, 5, 10, -1);
			pb = llm_rl_rate_limited(&b, 5, 10, -1);
			ok(pa != pb, "two processes get different jitter (%.3f, %.3f)", pa, pb);
		}
		ok(llm_rl_rate_limited(&rl, 100, 0, 7) >= 7, "no Retry-After: the announced reset");
		ok(llm_rl_rate_limited(&rl, 200, 3600, -1) <= 60 * 1.25, "a pause is capped at a minute (plus jitter)");
	}

	/* 5. The window: halves at most once a second, grows back, capped. */
	{
		LlmRateLimit rl = {0};

		llm_rl_configure(&rl, 0, 0, 16, 0);
		llm_rl_rate_limited(&rl, 10, 1, -1);
		llm_rl_rate_limited(&rl, 10.5, 1, -1);
		ok(rl.window == 8, "two 429s within a second halve once (%.1f)", rl.window);
		for (int i = 0; i < 1000; i++)
			llm_rl_success(&rl);
		ok(rl.window == 16, "answers grow it back to llm_max_parallel (%.1f)", rl.window);
		llm_rl_configure(&rl, 0, 0, 4, 20);
		ok(rl.window == 4, "a lower llm_max_parallel caps it");
		ok(llm_rl_admit(&rl, 30, 3, 1, NULL) && !llm_rl_admit(&rl, 30, 4, 1, NULL),
		   "at most window requests in flight");
	}

	/* 6. Announced figures never raise the bucket; a lower cap wins. */
	{
		LlmRateLimit rl = {0};

		llm_rl_configure(&rl, 0, 1000, 4, 0);
		llm_rl_announce(&rl, 0, -1, 5000, -1, 200, -1, -1);
		ok(llm_rl_tpm(&rl) == 1000, "the configured cap wins when lower");
		ok(rl.tok == 200, "remaining tokens lower the bucket");
		llm_rl_announce(&rl, 0, -1, 5000, -1, 900, -1, -1);
		ok(rl.tok == 200, "but never raise it");
		llm_rl_announce(&rl, 0, NAN, INFINITY, -5, NAN, -1, -1);
		ok(llm_rl_tpm(&rl) == 1000 && rl.tok == 200, "garbage figures are ignored");
	}

	/* 7. Durations. */
	is_str(llm_rl_parse_duration("20ms") == 0.02 ? "ok" : "bad", "ok", "20ms");
	ok(llm_rl_parse_duration("1.5s") == 1.5, "1.5s");
	ok(llm_rl_parse_duration("6m0s") == 360, "6m0s");
	ok(llm_rl_parse_duration("1h2m3s") == 3723, "1h2m3s");
	ok(llm_rl_parse_duration("12") == 12, "plain seconds");
	ok(llm_rl_parse_duration("") < 0 && llm_rl_parse_duration("soon") < 0 &&
	   llm_rl_parse_duration("5x") < 0 && llm_rl_parse_duration("-1s") < 0 &&
	   llm_rl_parse_duration(NULL) < 0, "not durations");
	is_str(llm_rl_reason_name(LLM_LIMIT_TOKENS), "tokens", "reason labels");
	fflush(stdout);
	start_mock();
	test_client();
	return done_testing();
}
