# tapbridge. `make demo` shows it working; `make test` is what CI runs.
SHELL := /bin/bash
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
export PATH := $(PATH):/usr/local/go/bin

FUZZTIME ?= 10s
COUNT ?= 5
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# staticcheck is built once for this machine: `GOOS=darwin go run` would
# build it for darwin and fail to exec it. GOOS then only selects the files
# it checks. On darwin, U1000 (unused) is off: the portable decisions are
# used by the Linux effects only, so every one would be reported there.
STATICCHECK_BIN := $(CURDIR)/.bin/staticcheck

.DEFAULT_GOAL := help
.PHONY: help deps test unit lint fmt fuzz bench demo e2e

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

deps: ## install what the tests need (iproute2, qemu, dnsmasq, cpio) if missing
	@bash .ci/deps

test: deps lint unit fuzz-smoke e2e ## everything CI runs: lint, unit+integration tests with -race, fuzz replay, the VM e2e
	@echo "make test: PASS"

unit: ## unit and integration tests with -race (integration tests need root)
	$(GO) test -race -count=1 -timeout 30m ./...
	cd bench && $(GO) test -race -count=1 -timeout 20m ./...

lint: ## gofmt, go vet and staticcheck, for the library (linux and darwin) and bench modules
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOOS=darwin $(GO) build ./...
	GOOS=darwin $(GO) vet ./...
	cd bench && $(GO) vet ./...
	GOBIN=$(CURDIR)/.bin $(GO) install $(STATICCHECK)
	$(STATICCHECK_BIN) ./...
	GOOS=darwin $(STATICCHECK_BIN) -checks inherit,-U1000 ./...
	cd bench && $(STATICCHECK_BIN) ./...
	@direct=$$($(GO) list -m -f '{{if and (not .Main) (not .Indirect)}}{{.Path}}{{end}}' all 2>/dev/null | grep . | sort | tr '\n' ' '); \
	 want="github.com/jsimonetti/rtnetlink/v2 github.com/mdlayher/netlink golang.org/x/sys "; \
	 if [ "$$direct" != "$$want" ]; then echo "library module must require exactly: $$want; has: $$direct"; exit 1; fi

fmt: ## format the code
	gofmt -w $$(git ls-files '*.go')

fuzz: ## run every fuzz target for FUZZTIME each
	@for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/^func //'); do \
	    echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
	    $(GO) test $$pkg -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) || exit 1; \
	  done; \
	done

# CI counts executions, not seconds: a duration -fuzztime can fail with a
# bare "context deadline exceeded" at its end, no input found (a race in Go's
# fuzzing coordinator, golang/go#75804, fixed in Go 1.27; seen here on 1.26).
fuzz-smoke: ## run every fuzz target briefly (CI)
	@$(MAKE) --no-print-directory fuzz FUZZTIME=100000x

bench: ## benchmarks side by side with the baselines, then the ratio table (root; SKIP_SCALE=1 skips BenchmarkScale)
	cd bench && set -o pipefail && rm -f bench.out && for i in $$(seq $(COUNT)); do \
	  TAPBRIDGE_BENCH_SKIP_SCALE=$(SKIP_SCALE) $(GO) test -run '^$$' -bench . -benchmem -count 1 -timeout 60m | tee -a bench.out || exit 1; done
	cd bench && $(GO) run ./cmd/benchtable < bench.out

demo: ## provision VMs on a bridge in a throwaway namespace, churn, GC, report (root)
	$(GO) run ./cmd/tapbridge demo

e2e: ## boot a real guest over a tapbridge TAP with DHCP from dnsmasq (root)
	$(GO) test -count=1 -v -timeout 20m -run '^TestE2E' ./internal/e2e -e2e
