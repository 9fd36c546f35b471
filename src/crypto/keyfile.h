/*
 * keyfile.h: the runner's RSA private key (mana_ai.private_key_file).
 */
#ifndef MANA_AI_KEYFILE_H
#define MANA_AI_KEYFILE_H

#include "postgres.h"

#include <openssl/evp.h>

/*
 * The key, cached per process until the setting or the file changes, or
 * NULL when not configured or refused (with a WARNING once).  The caller
 * never frees it and never keeps it beyond the call.
 */
extern EVP_PKEY *mana_ai_private_key(void);

#endif
