# mana_ai: PGXS build of the in-database mission runner.
#
#   make && make install     build and install the extension
#   make test                every test, in throwaway clusters, then the matrix
#                            subset on PostgreSQL 17 and 18 (see tests/run.sh)
#   make test-matrix         every test on every supported major (15, 17, 18)
#   make demo                the whole loop against a bundled mock LLM
#   make installcheck        pg_regress against an already running server
#   make dist                the PGXN zip of HEAD (git archive), mana_ai-VERSION.zip

EXTENSION   = mana_ai
EXTVERSION  = $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" mana_ai.control)
MODULE_big  = mana_ai

# A folder per concern (docs/architecture.md): src/tick/, src/planner/,
# src/crypto/, src/projection/, src/ops/, src/shared/, with mana_ai.c and
# worker.c on top.  src/core/ holds the code that parses untrusted bytes;
# it includes no PostgreSQL header so tests/unit and tests/fuzz can build
# it on its own.  Headers are included by their path under src/
# ("tick/tick.h"), so an include line names the folder it reaches into.
SRCS        = $(sort $(wildcard src/*.c src/*/*.c))
OBJS        = $(SRCS:.c=.o)

# The current version's install script is assembled from one fragment per
# concern (sql/install/NN_*.sql), as pgvector copies its base script to the
# versioned name.  Released install scripts (sql/mana_ai--X.Y.Z.sql) and
# upgrade scripts (sql/mana_ai--A--B.sql) are committed and never change.
MANA_INSTALL_SQL = sql/mana_ai--$(EXTVERSION).sql
INSTALL_PARTS  = $(sort $(wildcard sql/install/*.sql))
DATA_built  = $(MANA_INSTALL_SQL)
DATA        = $(filter-out $(MANA_INSTALL_SQL),$(wildcard sql/mana_ai--*.sql))
REGRESS     = $(sort $(patsubst sql/%.sql,%,$(filter-out sql/mana_ai--%,$(wildcard sql/*.sql))))
REGRESS_OPTS = --inputdir=.

# mana_ai_proxy: a second, pure SQL extension for the proxy database of a
# mana_sync sharded with PL/Proxy (docs/scale-out.md).  Its control file
# sits beside mana_ai.control because PGXS installs EXTENSION's control
# files from the top directory.
EXTENSION  += mana_ai_proxy
DATA       += $(wildcard proxy/mana_ai_proxy--*.sql)

JSONC_CFLAGS := $(shell pkg-config --cflags json-c 2>/dev/null)
# Development builds fail on any warning; packagers may pass WERROR=.
WERROR     ?= -Werror
PG_CPPFLAGS = -I$(srcdir)/src $(JSONC_CFLAGS) -DMANA_AI_VERSION='"$(EXTVERSION)"'
PG_CFLAGS   = -Wall -Wextra $(WERROR) -Wno-unused-parameter -Wno-sign-compare \
              -Wno-missing-field-initializers
SHLIB_LINK  = -lcurl -lcrypto -ljson-c

EXTRA_CLEAN = tests/unit/build tests/fuzz/build results regression.diffs regression.out
# Objects whose source moved or went (the flat src/ of 0.2.0, old
# bitcode) would otherwise outlive `make clean` forever.
EXTRA_CLEAN += $(filter-out $(OBJS),$(wildcard src/*.o src/*/*.o)) \
               $(wildcard src/*.bc src/*/*.bc)

# No LLVM bitcode: nothing here benefits from JIT inlining.  Set before
# PGXS is included: Makefile.global reads with_llvm there, and later the
# bitcode rules already exist (every compile error came twice).
override with_llvm = no

PG_CONFIG  ?= pg_config
PGXS       := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies unless the server was configured
# with --enable-depend: rebuild every object when any header changes, so
# a changed struct never meets a stale object (it crashed a worker once).
$(OBJS): $(wildcard src/*.h src/*/*.h)
# The User-Agent names the release (llm_client.c).
src/core/llm_client.o: mana_ai.control

$(MANA_INSTALL_SQL): $(INSTALL_PARTS) mana_ai.control
	{ printf '%s\n' '-- generated from sql/install/*.sql by make; do not edit' \
	    '\echo Use "CREATE EXTENSION mana_ai" to load this file. \quit'; \
	  for f in $(INSTALL_PARTS); do printf '\n-- ---- %s ----\n' "$$f"; cat "$$f"; done; } > $@

.PHONY: test test-matrix demo deps unit dist

deps:
	bash tests/deps.sh

test:
	bash tests/run.sh

test-matrix:
	MANA_MATRIX=full bash tests/run.sh

demo:
	bash tests/demo.sh

unit:
	$(MAKE) -C tests/unit

# The PGXN release zip, as pgvector makes it: what HEAD holds (committed
# files only, so never a build product), under mana_ai-VERSION/.
DISTFILE ?= mana_ai-$(EXTVERSION).zip
dist:
	git archive --format zip --prefix=mana_ai-$(EXTVERSION)/ -o $(DISTFILE) HEAD
