# The two commands of the README. Both make sure protoc (needed to build lance) is
# present first, installing Debian's protobuf-compiler when it is missing.

.PHONY: run test protoc sources clients

run: protoc
	cargo run -- sql -f sql/quickstart.sql

test: protoc sources
	cargo test
	$(MAKE) clients

# Real clients' own test suites (SQLAlchemy's dialect suite, psycopg2's and asyncpg's
# tests, pinned in tests/clients/requirements.txt) against the debug binary cargo test
# built, each gated by its list of known failures (tests/clients/README.md).
clients:
	python3 tests/clients/run.py psycopg2 --server-binary target/debug/lakehouse
	python3 tests/clients/run.py asyncpg --server-binary target/debug/lakehouse
	python3 tests/clients/run.py sqlalchemy --server-binary target/debug/lakehouse

# The MySQL/Postgres source tests talk to the servers on 127.0.0.1:3306 (MariaDB/MySQL,
# root, no password, database test) and 127.0.0.1:5432 (PostgreSQL, trust, database
# test). On CI (CI=true) they must run: an unreachable server fails here, before the
# build. Elsewhere their tests are skipped, and this says so.
sources:
	@for s in "MariaDB/MySQL 3306" "PostgreSQL 5432"; do \
	  name=$${s% *}; port=$${s##* }; \
	  if timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$$port" 2>/dev/null; then \
	    echo "source tests: $$name on 127.0.0.1:$$port is up; its tests run"; \
	  elif [ "$$CI" = true ]; then \
	    echo "source tests: $$name on 127.0.0.1:$$port is unreachable, and CI must run its tests (start it: see README)" >&2; exit 1; \
	  else \
	    echo "source tests: SKIPPED $$name tests: nothing listens on 127.0.0.1:$$port (start it to run them: see README)"; \
	  fi; \
	done

protoc:
	@command -v protoc >/dev/null 2>&1 || { \
	  echo "protoc not found: installing protobuf-compiler (lance's build needs it)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq protobuf-compiler; \
	}
