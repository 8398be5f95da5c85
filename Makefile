# onemap — the two commands a fresh machine needs:
#   make run    build and serve the Luozhuang demo on http://127.0.0.1:8080
#   make test   run every test (unit, integration against a real server and GDAL)

DB ?= sqlite://onemap.gpkg
BIND ?= 127.0.0.1:8080

.PHONY: run test lint build bench

run:
	cargo run --release --locked -- --database $(DB) serve --demo --bind $(BIND)

build:
	cargo build --release --locked

test:
	@command -v ogrinfo >/dev/null || { echo "!!! GDAL's ogrinfo is missing: the GeoPackage tests will FAIL (apt-get install gdal-bin)"; }
	@if cargo nextest --version >/dev/null 2>&1; then \
		cargo nextest run --locked --no-fail-fast; \
	else \
		cargo test --locked --no-fail-fast; \
	fi

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets --locked -- -D warnings
