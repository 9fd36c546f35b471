/*
 * runner_fields.h: the fields a row written by the runner (client_id
 * 'mana-ai-runner') may contribute to a folded record (issue 19), as a
 * SQL expression for the statements that read rows to fold (the refresh,
 * its history replay, and mana_ai_replay_record used by the write-back).
 *
 * The runner writes iterations (SPEC 11.2), in the seed format also
 * updatedAt and nextRunAt (SPEC 1.3: the seed format keeps the next slot in
 * the record).  updatedAt, a display stamp that steers nothing, is kept
 * in both formats, as the rows of the product's earlier runner (and the
 * generated fixtures) carry it.  Every other field of such a row (an objective, inputs, a
 * grant) is dropped from its data and its stamps before the fold, so no
 * row that claims to be the runner's can change what the tick sends to
 * the LLM.  Must never let any other field of a runner row through, and
 * never change rows of any other client.
 */
#ifndef MANA_AI_RUNNER_FIELDS_H
#define MANA_AI_RUNNER_FIELDS_H

#define RUNNER_KEEP_SEED "'iterations', 'updatedAt', 'nextRunAt'"
#define RUNNER_KEEP_CURRENT "'iterations', 'updatedAt'"

/* COL (data or the stamps column) of a row, for the fold; KEEP: above. */
#define RUNNER_FIELDS_SQL(COL, KEEP) \
	"CASE WHEN client_id = 'mana-ai-runner' AND jsonb_typeof(" COL ") = 'object'" \
	" THEN " COL " - ARRAY(SELECT k FROM jsonb_object_keys(" COL ") AS k" \
	"                      WHERE k NOT IN (" KEEP "))" \
	" ELSE " COL " END"

#endif
