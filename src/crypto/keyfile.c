/*
 * keyfile.c: the runner's RSA private key (mana_ai.private_key_file).
 *
 * Owns reading the PKCS#8 PEM, refusing a file that group or others can
 * read (as PostgreSQL does for ssl_key_file), and caching the key per
 * process until the setting or the file changes (so a SIGHUP reload or a
 * replaced file is picked up).  Must never log, return or keep key bytes
 * outside the EVP_PKEY; the file buffer is wiped.
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "crypto/keyfile.h"
#include "ops/guc.h"

/* A PEM RSA key is a few kB; anything far larger is not our file. */
#define KEYFILE_MAX_BYTES (64 * 1024)

static EVP_PKEY *cached_key = NULL;
static char *cached_path = NULL;	/* malloc'd; NULL = nothing cached */
static struct stat cached_stat;
static bool cached_stat_valid = false;

static void
forget_key(void)
{
	EVP_PKEY_free(cached_key);	/* RSA private parts are cleared on free */
	cached_key = NULL;
	free(cached_path);
	cached_path = NULL;
	cached_stat_valid = false;
}

/* Same path and same file contents as last time (inode, times, size, mode)? */
static bool
unchanged(const char *path, const struct stat *st)
{
	if (cached_path == NULL || strcmp(cached_path, path) != 0)
		return false;
	if (st == NULL)
		return !cached_stat_valid;
	return cached_stat_valid &&
		cached_stat.st_dev == st->st_dev && cached_stat.st_ino == st->st_ino &&
		cached_stat.st_mtime == st->st_mtime && cached_stat.st_ctime == st->st_ctime &&
		cached_stat.st_size == st->st_size && cached_stat.st_mode == st->st_mode &&
		cached_stat.st_uid == st->st_uid;
}

static void
remember(const char *path, const struct stat *st, EVP_PKEY *key)
{
	forget_key();
	cached_path = strdup(path);
	cached_key = cached_path ? key : NULL;
	if (cached_path == NULL)
		EVP_PKEY_free(key);
	cached_stat_valid = st != NULL;
	if (st != NULL)
		cached_stat = *st;
}

/* PostgreSQL's ssl_key_file rule, without the root 0640 exception. */
static bool
permissions_ok(const char *path, const struct stat *st)
{
	if (!S_ISREG(st->st_mode))
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("mana_ai.private_key_file is not a regular file"),
				 errdetail_log("File: \"%s\".", path),
				 errhint("Point mana_ai.private_key_file at the PKCS#8 PEM file of the runner's RSA key.")));
		return false;
	}
	if (st->st_uid != geteuid() && st->st_uid != 0)
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("mana_ai.private_key_file must be owned by the database user or root"),
				 errdetail_log("File \"%s\" is owned by uid %d.", path, (int) st->st_uid),
				 errhint("Run chown on the key file so the database server's user owns it; grants are not unwrapped until then.")));
		return false;
	}
	if (st->st_mode & (S_IRWXG | S_IRWXO))
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("mana_ai.private_key_file has group or world access"),
				 errdetail("The file must have permissions u=rw (0600) or less."),
				 errdetail_log("File \"%s\" has mode %04o; it must have permissions u=rw (0600) or less.",
							   path, (int) (st->st_mode & 07777)),
				 errhint("Run chmod 0600 on the key file, then SELECT pg_reload_conf(); grants are not unwrapped until then.")));
		return false;
	}
	return true;
}

/* Never prompt for a passphrase: an encrypted key is simply refused. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

/* Parse the PEM buffer; NULL (with a WARNING) when it is not an RSA key. */
static EVP_PKEY *
parse_key(const char *path, const unsigned char *pem, size_t len)
{
	BIO		   *bio = BIO_new_mem_buf(pem, (int) len);
	EVP_PKEY   *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;

	BIO_free(bio);
	ERR_clear_error();			/* the queue may describe the key; drop it */
	if (key != NULL && (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA || EVP_PKEY_get_bits(key) < 2048))
	{
		EVP_PKEY_free(key);
		ereport(WARNING,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("mana_ai.private_key_file does not hold an RSA key of at least 2048 bits"),
				 errdetail_log("File: \"%s\".", path),
				 errhint("Grants are wrapped with RSA-OAEP-2048; install the matching private key.")));
		return NULL;
	}
	if (key == NULL)
		ereport(WARNING,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("could not load mana_ai.private_key_file: not an unencrypted PEM private key"),
				 errdetail_log("File: \"%s\".", path),
				 errhint("The file must be a PKCS#8 PEM (\"BEGIN PRIVATE KEY\") without a passphrase.")));
	return key;
}

/* Open, re-check on the open descriptor (no swap after stat), read, parse. */
static EVP_PKEY *
load_key(const char *path)
{
	int			fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	unsigned char *buf;
	ssize_t		n;
	EVP_PKEY   *key = NULL;

	if (fd < 0)
	{
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not open mana_ai.private_key_file: %m"),
				 errdetail_log("File: \"%s\".", path),
				 errhint("Grants are reported as not-configured until the file can be read.")));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !permissions_ok(path, &st) || st.st_size > KEYFILE_MAX_BYTES)
	{
		close(fd);
		return NULL;
	}
	buf = palloc0(KEYFILE_MAX_BYTES + 1);
	n = read(fd, buf, KEYFILE_MAX_BYTES);
	close(fd);
	if (n > 0)
		key = parse_key(path, buf, (size_t) n);
	else
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not read mana_ai.private_key_file"),
				 errdetail_log("File: \"%s\".", path)));
	OPENSSL_cleanse(buf, KEYFILE_MAX_BYTES + 1);
	pfree(buf);
	return key;
}

EVP_PKEY *
mana_ai_private_key(void)
{
	const char *path = mana_ai_private_key_file;
	struct stat st;

	if (path == NULL || path[0] == '\0')
	{
		forget_key();
		return NULL;
	}
	if (stat(path, &st) != 0)
	{
		/* Warn once per missing file, not on every grant. */
		if (!unchanged(path, NULL))
		{
			ereport(WARNING,
					(errcode_for_file_access(),
					 errmsg("could not access mana_ai.private_key_file: %m"),
					 errdetail_log("File: \"%s\".", path),
					 errhint("Grants are reported as not-configured until the file exists.")));
			remember(path, NULL, NULL);
		}
		return NULL;
	}
	if (unchanged(path, &st))
		return cached_key;		/* may be NULL: a refused file warns once */
	remember(path, &st, load_key(path));
	return cached_key;
}
