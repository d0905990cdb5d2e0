# The two commands of the README. Both make sure protoc (needed to build lance) is
# present first, installing Debian's protobuf-compiler when it is missing.

.PHONY: run test protoc

run: protoc
	cargo run -- sql -f sql/quickstart.sql

test: protoc
	cargo test

protoc:
	@command -v protoc >/dev/null 2>&1 || { \
	  echo "protoc not found: installing protobuf-compiler (lance's build needs it)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq protobuf-compiler; \
	}
