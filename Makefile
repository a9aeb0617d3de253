# Thin wrapper over CMake: `make run` and `make test` are the README's two commands.
BUILD      ?= build
REL_BUILD  ?= build-release
ASAN_BUILD ?= build-asan
M228_BUILD ?= build-228
# Where Mbed TLS comes from (cmake/mbedtls.cmake): auto = the system's when it is 3.6 or newer
# (Debian 13), else Debian trixie's 3.6 source package fetched and built into the build tree
# (Debian 12). The system's 2.28 (Debian 12) is still built and tested in $(M228_BUILD).
MBEDTLS    ?= auto
CMAKE_MBED := -DCERTMQ_MBEDTLS=$(MBEDTLS)
PKI        ?= dev-pki
JOBS       ?= $(shell nproc)
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Debian 12 packages: build, run, and the real peers the tests use.
DEPS := cmake make gcc clang libclang-rt-14-dev pkg-config openssl dpkg-dev \
        libmbedtls-dev libuv1-dev uthash-dev libwebsockets-dev libwebsockets-evlib-uv libsqlite3-dev \
        libnats-dev nats-server libsystemd-dev \
        dpkg-dev groff-base man-db procps \
        mosquitto mosquitto-clients python3 python3-paho-mqtt python3-cryptography haproxy \
        python3-prometheus-client curl

.PHONY: all deps js-deps build build-release build-asan build-228 run pki test test-fast test-asan deb format clean

all: build

deps:
	@missing=$$(for p in $(DEPS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# MQTT.js and ws for the WebSocket tests, exactly as locked (no network access beyond npm's).
js-deps: deps
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm; }
	cd test/integration/js && npm ci --no-audit --no-fund --loglevel=error

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_MBED) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

# Release (-O3) is built, not run, so optimiser-only warnings fail the suite too.
build-release: deps
	cmake -S . -B $(REL_BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_MBED) >/dev/null
	cmake --build $(REL_BUILD) -j $(JOBS)

build-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
	  -DCERTMQ_SANITIZE=ON -DCERTMQ_FUZZ=ON $(CMAKE_MBED) >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)

# The system's Mbed TLS 2.28 (Debian 12), kept while it is cheap: nothing where the system has
# another version (Debian 13).
build-228: deps
	@if grep -qs '#define MBEDTLS_VERSION_MAJOR *2$$' /usr/include/mbedtls/version.h; then \
	  cmake -S . -B $(M228_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCERTMQ_MBEDTLS=system >/dev/null && \
	  cmake --build $(M228_BUILD) -j $(JOBS); \
	else echo "no system Mbed TLS 2.28: $(M228_BUILD) skipped"; fi

# A development PKI: CA, server certificate for localhost, a few devices, a CRL.
pki: deps
	certs/certmq-pki -d $(PKI) init --if-missing
	@[ -f $(PKI)/issued/server.crt ] || certs/certmq-pki -d $(PKI) server server
	@for d in device-001 device-002 dashboard admin; do \
	  [ -f $(PKI)/issued/$$d.crt ] || certs/certmq-pki -d $(PKI) device $$d; done
	certs/certmq-pki -d $(PKI) crl

run: build pki
	$(BUILD)/certmq -c config/certmq.conf

# The whole suite: normal build, then ASan + UBSan build with libFuzzer targets.
test: build build-release build-asan build-228 js-deps
	cd $(BUILD) && ctest -j $(JOBS) --output-on-failure
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest -j $(JOBS) --output-on-failure
	@if [ -d $(M228_BUILD) ]; then cd $(M228_BUILD) && ctest -j $(JOBS) --output-on-failure; fi

test-fast: build js-deps
	cd $(BUILD) && ctest -j $(JOBS) --output-on-failure

# The Debian package from the Release build: build-release/certmq_VERSION_ARCH.deb
deb: build-release
	cd $(REL_BUILD) && cpack -G DEB

format:
	clang-format -i broker/*/*.c broker/*/*.h lib/*/*.c lib/*/*.h plugins/*/*.c plugins/*/*.h test/unit/*.c test/fuzz/*.c

clean:
	rm -rf $(BUILD) $(REL_BUILD) $(ASAN_BUILD) $(M228_BUILD)
