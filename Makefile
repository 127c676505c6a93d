# s3dest — see README.md. Every target works from a fresh clone; `make test` installs what the tests need.
SHELL := /bin/bash
SERVICES := ingest batcher stager copier validator admin
MODULES := pkg proto $(addprefix services/,$(SERVICES) allinone) bench docs/querytest deploy/deploytest
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
NATS_SERVER_VERSION := v2.15.2
CLUSTER_ENV := deploy/local/cluster.env
GOBIN := $(shell go env GOPATH)/bin
BROWSER_CLIENT := services/allinone/testdata/browser-client
PUBLICAPI_CLIENT := services/allinone/testdata/publicapi-client
TEST_FLAGS ?= -count=1 -timeout 20m
FUZZTIME ?= 30s
# s3dest version's build info: Go stamps no VCS settings in workspace mode, so make build passes them
S3DEST_PKG := github.com/s3dest/s3dest/services/allinone
S3DEST_LDFLAGS = -X $(S3DEST_PKG).buildTime=$(shell date -u +%Y-%m-%dT%H:%M:%SZ) \
  -X $(S3DEST_PKG).buildRevision=$(shell git describe --always --dirty --abbrev=40 2>/dev/null) \
  -X $(S3DEST_PKG).buildCommitTime=$(shell git log -1 --format=%cI 2>/dev/null)

.PHONY: cluster build test fuzz deps check generate lint vet check-generated build-isolated tidy bench bench-quick bench-cluster bench-go chaos chaos-quick smoke clean

## build: bin/s3dest (all-in-one and CLI) and one binary per service
build:
	@mkdir -p bin
	go build -ldflags "$(S3DEST_LDFLAGS)" -o bin/s3dest ./services/allinone/cmd/s3dest
	@for s in $(SERVICES); do echo "go build -o bin/$$s ./services/$$s/cmd/$$s"; go build -o bin/$$s ./services/$$s/cmd/$$s || exit 1; done

## test: the whole suite against real NATS, redis-server and MinIO (installed by `make deps` if missing)
test: deps
	go test $(TEST_FLAGS) $$(go list -f '{{.Dir}}/...' -m | grep -v '/proto/')

## fuzz: every fuzz target of every module (each `func Fuzz…` in a _test.go), FUZZTIME each: go test fuzzes one
## target per invocation. Fails when any target finds an input; go test leaves it in <package>/testdata/fuzz.
## Go 1.26's fuzz coordinator can fail a run with a bare "context deadline exceeded" as -fuzztime ends on a
## loaded machine (go.dev/issue/75804, fixed in Go 1.27): such a run, with no input written, runs once more.
fuzz:
	@failed=; log=$$(mktemp); trap 'rm -f $$log' EXIT; \
	for found in $$(grep -rE --include='*_test.go' '^func Fuzz\w*\(' $(MODULES) | sed -E 's#/[^/]*:func (Fuzz\w*).*#:\1#' | sort); do \
	  dir=$${found%:*}; target=$${found#*:}; \
	  for attempt in 1 2; do \
	    echo "go test -run '^$$' -fuzz '^$$target$$' -fuzztime $(FUZZTIME) ./$$dir"; \
	    go test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) ./$$dir 2>&1 | tee $$log; \
	    test $${PIPESTATUS[0]} -eq 0 && break; \
	    if [ $$attempt = 1 ] && grep -q 'context deadline exceeded' $$log && ! grep -q 'Failing input written' $$log; then \
	      echo "$$target: the fuzz coordinator's deadline race (go.dev/issue/75804), no input found: once more"; continue; fi; \
	    failed="$$failed $$dir:$$target"; break; \
	  done; \
	done; \
	test -z "$$failed" || { echo "fuzz found inputs in:$$failed"; git status --short --untracked-files=all -- '*/testdata/fuzz/*'; exit 1; }

## deps: redis-server, chromium, node, npm and foreman (Debian packages; apt-get update once if any is missing),
## the pinned MinIO and nats-server (go install, cached in $(GOBIN)), and the npm clients the tests drive (the browser
## test's analytics.js, Segment's Public API client): npm ci from each committed lockfile, again whenever the lockfile is
## newer than the install (npm writes node_modules/.package-lock.json)
deps:
	@missing=""; for p in redis-server:redis-server chromium:chromium node:nodejs npm:npm foreman:ruby-foreman; do \
	  command -v $${p%%:*} >/dev/null || missing="$$missing $${p#*:}"; done; \
	  test -z "$$missing" || { echo "apt-get install$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; }
	@test -x $(GOBIN)/minio && grep -qx '$(MINIO_VERSION)' $(GOBIN)/.minio-version 2>/dev/null || { \
	  echo "installing MinIO $(MINIO_VERSION) (a few minutes, once)"; \
	  GOFLAGS=-buildvcs=false go install github.com/minio/minio@$(MINIO_VERSION) && echo '$(MINIO_VERSION)' > $(GOBIN)/.minio-version; }
	@test -x $(GOBIN)/nats-server && grep -qx '$(NATS_SERVER_VERSION)' $(GOBIN)/.nats-server-version 2>/dev/null || { \
	  echo "installing nats-server $(NATS_SERVER_VERSION)"; \
	  go install github.com/nats-io/nats-server/v2@$(NATS_SERVER_VERSION) && echo '$(NATS_SERVER_VERSION)' > $(GOBIN)/.nats-server-version; }
	@for dir in $(BROWSER_CLIENT) $(PUBLICAPI_CLIENT); do \
	  test $$dir/node_modules/.package-lock.json -nt $$dir/package-lock.json || { \
	    echo "npm ci in $$dir"; (cd $$dir && npm ci --no-audit --no-fund --loglevel=error) || exit 1; }; done

## cluster: the local cluster of deploy/local (DESIGN.md §8) under foreman, then its bootstrap, which
## writes $$S3DEST_CLUSTER_DIR/summary.json and prints how to send an event; Ctrl-C stops every process
cluster: deps build
	@PATH="$(GOBIN):$$PATH" foreman start -f deploy/local/Procfile -e $(CLUSTER_ENV) -d . & foreman=$$!; \
	  trap 'kill $$foreman 2>/dev/null; wait $$foreman' INT TERM EXIT; \
	  deploy/local/bootstrap && wait $$foreman

## check: what CI checks besides the tests
check: lint check-generated vet build-isolated

lint:
	go tool buf lint

generate:
	go tool buf generate

check-generated: generate
	@git diff --exit-code -- pkg/gen || { echo "pkg/gen is stale: run make generate and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- pkg/gen)" || { git status --porcelain -- pkg/gen; echo "pkg/gen has untracked generated files"; exit 1; }

vet:
	go vet $$(go list -f '{{.Dir}}/...' -m | grep -v '/proto/')

## build-isolated: every module builds on its own (GOWORK=off), as a user vendoring one service would
build-isolated:
	@for m in pkg $(addprefix services/,$(SERVICES) allinone) bench docs/querytest deploy/deploytest; do echo "GOWORK=off go build ./... in $$m"; (cd $$m && GOWORK=off go build ./...) || exit 1; done

## tidy: go mod tidy in every module, as each builds on its own (GOWORK=off)
tidy:
	@for m in pkg $(addprefix services/,$(SERVICES) allinone) bench docs/querytest deploy/deploytest; do echo "tidy $$m"; (cd $$m && GOWORK=off go mod tidy) || exit 1; done

## bench: s3dest end to end against real NATS (file storage), redis-server and MinIO behind the STS gate,
## all-in-one and as separate processes, next to the raw limits; writes bench/results/ (report.md, latest.json, charts)
bench: deps build
	go build -o bin/bench ./bench
	bin/bench

## bench-quick: the same, all-in-one only with short phases (under 60 s after the build)
bench-quick: deps build
	go build -o bin/bench ./bench
	bin/bench -quick

## chaos: the chaos suite (bench/chaos, README "Chaos suite"): the local cluster of deploy/local, each line its
## own process group, under steady load from Segment's Go client; every fault scenario one at a time, with
## recovery between; writes bench/results/chaos.{json,md} and fails on any lost or duplicated event
chaos: deps build
	go build -o bin/chaos ./bench/chaos
	bin/chaos

## chaos-quick: the CI subset (kill an ingest, the source's batcher, a copier, the EVENTS leader's NATS node;
## FLUSHALL) with short phases, under 6 minutes on 2 cores; writes bench/results/chaos-quick.{json,md}
chaos-quick: deps build
	go build -o bin/chaos ./bench/chaos
	bin/chaos -quick

## bench-cluster: the local R3 cluster (deploy/local/Procfile, PARTITIONS=3, every line a process) under Segment's
## Go client at both ingest replicas: delivered events/s next to raw R3 JetStream publish, CPU-s per million events;
## writes bench/results/cluster.json and cluster.md
bench-cluster: deps build
	go build -o bin/bench ./bench
	bin/bench -cluster -duration 20s

## bench-go: the Go benchmarks of every module (ingest vs raw JetStream, ...)
bench-go:
	go test -run '^$$' -bench . -benchtime 3s $$(go list -f '{{.Dir}}/...' -m | grep -v '/proto/')

smoke:
	../shared/tools/smoke

clean:
	rm -rf bin
