# onemap — the two commands a fresh machine needs:
#   make run    build and serve the Luozhuang demo on http://127.0.0.1:8080
#   make test   run every test (unit, integration against a real server and
#               GDAL, and the web map in a real Chromium when one is installed)

DB ?= sqlite://onemap.gpkg
BIND ?= 127.0.0.1:8080
CHROMIUM ?= /usr/bin/chromium

.PHONY: run test test-rust test-postgis test-web web-deps lint build bench

web-deps:
	@[ -d web/node_modules/maplibre-gl ] || (cd web && npm ci --no-audit --no-fund)

BASEMAP ?= tiles/linyi-basemap.mbtiles

run: web-deps
	@[ -f $(BASEMAP) ] || cargo run --release --locked -- --database $(DB) basemap --demo -o $(BASEMAP)
	cargo run --release --locked -- --database $(DB) serve --demo --bind $(BIND)

build:
	cargo build --release --locked

test: test-rust test-web

test-rust:
	@command -v ogrinfo >/dev/null || { echo "!!! GDAL's ogrinfo is missing: the GeoPackage tests will FAIL (apt-get install gdal-bin)"; }
	@python3 -c "import pmtiles" 2>/dev/null || { echo "!!! Python's pmtiles is missing: the PMTiles test will FAIL (pip install -r tests/support/requirements.txt)"; }
	@status=0; \
	if cargo nextest --version >/dev/null 2>&1; then \
		cargo nextest run --locked --no-fail-fast -E 'not test(/^postgis::/)' || status=1; \
	else \
		cargo test --locked --no-fail-fast -- --skip postgis:: || status=1; \
	fi; \
	if [ -n "$$ONEMAP_TEST_POSTGRES_URL" ]; then \
		$(MAKE) --no-print-directory test-postgis || status=1; \
	else \
		echo "!!!!!!!! NOT RUN: the PostGIS pass of the integration suite needs ONEMAP_TEST_POSTGRES_URL (see the README) !!!!!!!!"; \
	fi; \
	exit $$status

# The integration suite again, every server on PostgreSQL + PostGIS (a
# schema of its own per test, in the database ONEMAP_TEST_POSTGRES_URL
# names). Left out, as they are about the GeoPackage file itself: GDAL and
# sqlite reading or writing it, the index snapshot beside it, its WAL.
POSTGIS_TESTS ?= not (test(/^geopackage::/) | test(/^snapshot::/) \
  | test(=health::graceful_shutdown_leaves_a_complete_single_file) \
  | test(=hostile_files::a_hostile_geometry_written_into_the_servers_file_is_skipped_at_start_not_a_crash_loop) \
  | test(=hostile_files::an_attribute_only_row_written_by_another_tool_does_not_stop_serve))
test-postgis:
	ONEMAP_TEST_STORE=postgis cargo nextest run --locked --no-fail-fast --test api -E '$(POSTGIS_TESTS)'

# The browser tests drive the binary the test build makes (`cargo test
# --no-run` builds it for the integration tests): a separate `cargo build`
# would build every dependency, HiGHS' C++ included, a second time.
test-web: web-deps
	@if [ -x "$(CHROMIUM)" ]; then \
		cargo test --no-run --locked && \
		cd web && ONEMAP_BIN=$${CARGO_TARGET_DIR:-$(CURDIR)/target}/debug/onemap CHROMIUM=$(CHROMIUM) npm test; \
	else \
		echo "!!!!!!!! SKIPPED: the browser test of the web map needs Chromium at $(CHROMIUM) (apt-get install chromium) !!!!!!!!"; \
	fi

bench:
	cargo bench --bench features

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets --locked --profile test -- -D warnings
