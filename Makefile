# pay — PGXS build.  `make && make install`, then `make test` (see README).
#
# Layout: C sources in src/ (plain-C protocol and crypto code in src/proto/ and src/crypto/, no postgres.h),
# the install script is assembled from src/sql/*.sql fragments in name order,
# src/upgrade/ holds the install scripts of released versions as they were
# released (pay--<version>.sql) and the upgrade scripts between versions
# (pay--<from>--<to>.sql, for ALTER EXTENSION pay UPDATE).

EXTENSION   = pay
EXTVERSION  = $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" $(EXTENSION).control)

MODULE_big  = pay
OBJS        = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c src/*/*.c)))
DATA_built  = $(EXTENSION)--$(EXTVERSION).sql
DATA        = $(wildcard src/upgrade/$(EXTENSION)--*.sql)
# -Bsymbolic: our calls bind to our own definitions even where the postgres
# executable exports a function of the same name (it has hex_encode, for one).
SHLIB_LINK  = -lssl -lcrypto -lcurl -lz -Wl,-Bsymbolic
PG_CPPFLAGS = -I$(srcdir)/src -I$(srcdir)/src/crypto -I$(srcdir)/src/proto
# make ASSERTS=1 (or ASSERTS=1 in the environment): the Assert()s on the
# money invariants are checked at run time (PostgreSQL's USE_ASSERT_CHECKING,
# which works against a server built without it); CI runs the suites once so.
ifdef ASSERTS
PG_CPPFLAGS += -DUSE_ASSERT_CHECKING
endif
# -Wno-unused-parameter: PostgreSQL's own headers and every PG_FUNCTION_ARGS
# function trip it (pgvector's CI makes the same exception).
PG_CFLAGS   = -Wall -Wextra -Werror -Wno-unused-parameter

# pg_regress: every sql/*.sql in name order, in a throwaway preloaded instance.
REGRESS      = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --temp-instance=$(CURDIR)/tmp_check_regress \
               --temp-config=$(srcdir)/test/pay-test.conf --load-extension=pay

# isolation specs: test/isolation/specs/*.spec
ISOLATION      = $(patsubst test/isolation/specs/%.spec,%,$(sort $(wildcard test/isolation/specs/*.spec)))
ISOLATION_OPTS = --temp-instance=$(CURDIR)/tmp_check_iso \
                 --temp-config=$(srcdir)/test/pay-test.conf --load-extension=pay \
                 --inputdir=$(srcdir)/test/isolation --outputdir=$(CURDIR)/output_iso

# TAP tests (PostgreSQL::Test::Cluster): test/t/*.pl
TAP_TESTS   = 1
PROVE_TESTS = $(sort $(wildcard test/t/*.pl))

EXTRA_CLEAN = $(DATA_built) tmp_check_regress tmp_check_iso output_iso

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(DATA_built): $(sort $(wildcard src/sql/*.sql)) $(EXTENSION).control
	cat $(sort $(wildcard src/sql/*.sql)) > $@

# `make test`: every suite against the installed extension (README explains
# how test/run-all installs into a throwaway tree first).
.PHONY: test regresscheck isolationcheck tapcheck
test: regresscheck isolationcheck tapcheck

regresscheck:
	$(pg_regress_installcheck) $(REGRESS_OPTS) $(REGRESS)

isolationcheck:
	$(pg_isolation_regress_installcheck) $(ISOLATION_OPTS) $(ISOLATION)

tapcheck:
	$(if $(PROVE_TESTS),$(prove_installcheck),@echo "no TAP tests")
