/*
 * injection.c: the prompt-injection markers of injection.h.
 *
 * Owns two passes over a string: the markers that are character
 * sequences (a "<system" tag, "<|im_start|>", "[INST]", "{{" before
 * "}}") on the text lowered, and the phrases ("ignore all previous
 * instructions", "ignoriere die vorherigen Anweisungen", "you are now")
 * on its words, where any run of characters other than letters and
 * digits separates words.  Must never allocate in proportion to more
 * than the text, never read past len, never include a PostgreSQL header.
 */
#include "injection.h"

#include <stdlib.h>
#include <string.h>

#define MAX_WORDS_BETWEEN 3

typedef struct Word
{
	const char *s;
	size_t		len;
} Word;

static const char *const ignore_verbs[] = {
	"ignore", "disregard", "ignoriere", "ignorier", "ignorieren", "missachte", "override",
	"overwrite", "uberschreibe", NULL
};
static const char *const forget_verbs[] = {
	"forget", "vergiss", "vergesse", "vergessen", NULL
};
static const char *const earlier[] = {
	"previous", "prior", "above", "earlier", "preceding", "all", "your", "system",
	"vorherigen", "vorigen", "bisherigen", "obigen", "vorangegangenen", "alle", "deine",
	"ihre", NULL
};
static const char *const instructions[] = {
	"instructions", "instruction", "prompts", "prompt", "rules", "directions", "directives",
	"anweisungen", "anweisung", "instruktionen", "befehle", "regeln", "vorgaben", NULL
};

static bool
word_is(Word w, const char *const *set)
{
	for (; *set; set++)
		if (strlen(*set) == w.len && memcmp(*set, w.s, w.len) == 0)
			return true;
	return false;
}

static bool
word_eq(Word w, const char *s)
{
	return strlen(s) == w.len && memcmp(s, w.s, w.len) == 0;
}

/* verb, then within MAX_WORDS_BETWEEN words an instructions noun. */
static bool
verb_then_noun(const Word *w, int n, int i, const char *const *verbs, bool need_earlier)
{
	bool		seen_earlier = !need_earlier;

	if (!word_is(w[i], verbs))
		return false;
	for (int j = i + 1; j < n && j <= i + 1 + MAX_WORDS_BETWEEN; j++)
	{
		if (word_is(w[j], instructions))
			return seen_earlier;
		if (word_is(w[j], earlier))
			seen_earlier = true;
	}
	return false;
}

static const char *
phrase_marker(const Word *w, int n)
{
	for (int i = 0; i < n; i++)
	{
		if (verb_then_noun(w, n, i, ignore_verbs, true))
			return "ignore-instructions";
		if (verb_then_noun(w, n, i, forget_verbs, false))
			return "forget-instructions";
		if (i + 1 < n && (word_eq(w[i], "new") || word_eq(w[i], "neue")) &&
			(word_eq(w[i + 1], "instructions") || word_eq(w[i + 1], "anweisungen")))
			return "new-instructions";
		if (i + 2 < n && word_eq(w[i], "you") && word_eq(w[i + 1], "are") &&
			word_eq(w[i + 2], "now"))
			return "role-override";
		if (i + 2 < n && word_eq(w[i], "du") && word_eq(w[i + 1], "bist") &&
			(word_eq(w[i + 2], "jetzt") || word_eq(w[i + 2], "nun") || word_eq(w[i + 2], "ab")))
			return "role-override";
		if (i + 1 < n && word_eq(w[i], "system") &&
			(word_eq(w[i + 1], "prompt") || word_eq(w[i + 1], "override")))
			return "role-override";
	}
	return NULL;
}

static bool
contains(const char *hay, size_t len, const char *needle)
{
	size_t		m = strlen(needle);

	for (size_t i = 0; i + m <= len; i++)
		if (memcmp(hay + i, needle, m) == 0)
			return true;
	return false;
}

static const char *
sequence_marker(const char *low, size_t len)
{
	const char *open;

	if (contains(low, len, "<system") || contains(low, len, "</system") ||
		contains(low, len, "[system]") || contains(low, len, "<<sys>>"))
		return "system-tag";
	if (contains(low, len, "<|im_start|>") || contains(low, len, "<|system|>") ||
		contains(low, len, "[inst]") || contains(low, len, "<|endoftext|>"))
		return "chat-template";
	for (open = low; (size_t) (open - low) + 2 <= len; open++)
		if (open[0] == '{' && open[1] == '{')
			return contains(open + 2, len - (open + 2 - low), "}}") ? "template-braces" : NULL;
	return NULL;
}

static bool
is_word_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80;
}

/* German umlauts folded to their base letter ("überschreibe" -> "uberschreibe"). */
static size_t
fold(const unsigned char *s, size_t len, size_t i, char *out)
{
	if (s[i] == 0xC3 && i + 1 < len)
	{
		switch (s[i + 1])
		{
			case 0xA4: case 0x84: *out = 'a'; return 2;
			case 0xB6: case 0x96: *out = 'o'; return 2;
			case 0xBC: case 0x9C: *out = 'u'; return 2;
		}
	}
	*out = (s[i] >= 'A' && s[i] <= 'Z') ? (char) (s[i] + 32) : (char) s[i];
	return 1;
}

const char *
injection_marker_text(const char *text, size_t len)
{
	const unsigned char *s = (const unsigned char *) text;
	char	   *low;
	Word	   *words;
	size_t		n_low = 0;
	int			n_words = 0;
	const char *found;

	if (text == NULL || len == 0)
		return NULL;
	low = malloc(len + 1);
	words = malloc(sizeof(Word) * (len / 2 + 1));
	if (low == NULL || words == NULL)
	{
		free(low);
		free(words);
		return "unreadable";	/* fail closed: flag what cannot be scanned */
	}
	for (size_t i = 0; i < len;)
		i += fold(s, len, i, &low[n_low++]);
	low[n_low] = '\0';
	found = sequence_marker(low, n_low);
	for (size_t i = 0; found == NULL && i < n_low;)
	{
		size_t		start;

		while (i < n_low && !is_word_byte((unsigned char) low[i]))
			i++;
		start = i;
		while (i < n_low && is_word_byte((unsigned char) low[i]))
			i++;
		if (i > start)
			words[n_words++] = (Word) {low + start, i - start};
	}
	if (found == NULL)
		found = phrase_marker(words, n_words);
	free(low);
	free(words);
	return found;
}

const char *
injection_marker(json_object *v)
{
	const char *found = NULL;

	switch (json_object_get_type(v))
	{
		case json_type_string:
			return injection_marker_text(json_object_get_string(v),
										 (size_t) json_object_get_string_len(v));
		case json_type_array:
			for (size_t i = 0; found == NULL && i < json_object_array_length(v); i++)
				found = injection_marker(json_object_array_get_idx(v, i));
			return found;
		case json_type_object:
			{
				json_object_object_foreach(v, key, val)
				{
					if ((found = injection_marker_text(key, strlen(key))) != NULL ||
						(found = injection_marker(val)) != NULL)
						return found;
				}
				return NULL;
			}
		default:
			return NULL;
	}
}
