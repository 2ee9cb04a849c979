# Junction. `make run` starts a server on the built-in store; `make test`
# runs the tests. Tools are pinned and installed into ./bin.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
export PATH := $(BIN):$(PATH)

PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
GRPC_GATEWAY_VERSION := v2.33.0
STATICCHECK_VERSION := v0.8.2
PROTOC_VERSION := 3.21.12

.PHONY: build test fuzz deps deps-apt lint generate run tools bench bench-cluster bench-auth bench-go guarantees guarantees-nacos console-screenshots clean release bench-nacos bench-scale

build:
	$(GO) build -buildvcs=auto -o bin/junction ./cmd/junction

# release builds static, reproducible binaries (no cgo, -trimpath, no
# build id, stripped; the version from git describe, the commit and its
# date from the checkout) for each of RELEASE_TARGETS into dist/, with
# their SHA256SUMS. The same commit and Go version give the same bytes.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
RELEASE_TARGETS := linux/amd64 linux/arm64 darwin/arm64
release:
	rm -rf dist && mkdir -p dist
	@for t in $(RELEASE_TARGETS); do \
		os=$${t%/*}; arch=$${t#*/}; out=dist/junction-$(VERSION)-$$os-$$arch; \
		echo "building $$out"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -buildvcs=auto \
			-ldflags "-s -w -buildid= -X main.version=$(VERSION)" -o $$out ./cmd/junction || exit 1; \
	done
	cd dist && sha256sum junction-* > SHA256SUMS
	@ls -l dist

run: build
	./bin/junction server

# deps installs ZooKeeper and protoc from Debian when missing (.ci/deps) and
# builds Consul (.ci/consul) and Polaris, the Nacos-protocol server
# (.ci/polaris), from the Go module proxy into the user cache.
deps: deps-apt
	@bash .ci/consul
	@bash .ci/polaris

deps-apt:
	@bash .ci/deps

# Two packages run at a time (-p 2, one per core of the CI machine): their
# servers take their ports from conformance/ports (below the ephemeral
# range, locked per process), so packages side by side never race for a
# port. On a clean clone this took CI from 14m58s (-p 1) to 10m52s.
#
# The nacos tests that restart the server, and the ZooKeeper guarantee run,
# run in a second pass without the race detector: the Nacos SDK's and
# go-zookeeper's own reconnect handling is racy (see
# backends/nacos/reconnect_test.go, conformance/guarantees/nacos_test.go
# and conformance/guarantees/zookeeper_test.go).
test: deps
	$(GO) vet ./...
	$(GO) test -race -p 2 -timeout 20m ./...
	$(GO) test -p 1 -run 'TestResetAfterReconnect|TestPolarisWedgesAfterPartition|TestBoundedRunNacos|TestBoundedRunZooKeeper' ./backends/nacos ./conformance/guarantees
	$(MAKE) fuzz

# fuzz runs each native fuzz target for FUZZTIME (go test runs only one
# target per invocation); a failure's input lands in the package's
# testdata/fuzz, to commit with its fix.
FUZZTIME ?= 20s
FUZZ_TARGETS := ./model:FuzzValidate ./gateway:FuzzREST
fuzz:
	@for t in $(FUZZ_TARGETS); do \
	  echo "fuzz $${t#*:} ($${t%%:*}, $(FUZZTIME))"; \
	  $(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) $${t%%:*} || exit 1; \
	done

# bench runs the standard workloads side by side on every store this
# machine runs (the built-in store, etcd, ZooKeeper, Consul), through the
# gateway, the driver and each store's own client, and rewrites the
# generated section of docs/benchmarks.md (about 6 minutes).
bench: deps build
	./bin/junction bench all --local raft,etcd,zookeeper,consul --via gateway,driver,client \
	  -d 3s --subscribers 1000 --updates 20 --report docs/benchmarks.md

# bench-cluster measures writes on one node against a three-node cluster
# (in process, over loopback TCP), and linearizable reads on both, with 1 and
# with 64 concurrent callers, and
# rewrites those sections of docs/benchmarks.md (about 2 minutes).
bench-cluster: build
	for c in 1 64; do \
	  ./bin/junction bench register config-put instances config-get --local raft,raft-3 -c $$c -d 4s \
	    --report docs/benchmarks.md --report-section cluster-c$$c || exit 1; \
	done

# bench-auth measures access control on against off, side by side through
# two gateways over each store, and rewrites that section of
# docs/benchmarks.md (about 2 minutes).
bench-auth: deps build
	./bin/junction bench register config-get instances watch-fanout --local raft,etcd,consul --via gateway,auth \
	  -d 5s --subscribers 1000 --updates 20 --report docs/benchmarks.md --report-section auth

# bench-go runs the Go benchmarks of the gateway (and, with real stores,
# of every backend through it).
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./gateway/

# guarantees measures every local backend, nacos included, in one full run
# (about 7 minutes) and writes docs/guarantees.md; CI runs the bounded
# version inside `make test`. It runs in a private network namespace
# (root): Polaris, the Nacos-protocol server, listens on fixed ports.
guarantees: deps build
	unshare --net sh -c 'ip link set lo up && JUNCTION_PRIVATE_NETNS=1 exec ./bin/junction conformance --out docs'

# guarantees-nacos measures the Nacos protocol served by Polaris, through
# the driver and through the gateway, in a private network namespace (root),
# and writes the report to guarantees-nacos/.
guarantees-nacos: deps build
	unshare --net sh -c 'ip link set lo up && JUNCTION_PRIVATE_NETNS=1 exec ./bin/junction conformance --backend nacos --out guarantees-nacos'

# bench-nacos runs one nacos-sdk-go workload against Junction's Nacos front
# end and against Polaris' Nacos server, side by side (docs/benchmarks.md).
bench-nacos: deps
	$(GO) test -run '^$$' -bench 'AgainstPolaris/(register|query)' -benchtime 3s -count 2 ./gateway/nacos/
	$(GO) test -run '^$$' -bench 'AgainstPolaris/config-push' -benchtime 40x ./gateway/nacos/

# bench-scale loads the built-in store with 10k, 100k and 1M instances
# (and 10k to 100k configs), each into a fresh server, and rewrites the
# scale section of docs/benchmarks.md and its charts in docs/scale; then
# it measures watch fan-out (over one gateway and two) and many services
# watched at once, loads a 3-node cluster at the same sizes and times a
# new follower's catch-up, and keeps 100k sessions alive on the built-in store and on
# etcd through the gateway (about 40 minutes). CI runs a bounded version inside `make test`
# (TestBenchScale).
bench-scale: build
	./bin/junction bench scale --fanouts none --watched-services 0 --catch-up-sizes none --report docs/benchmarks.md
	./bin/junction bench scale --sizes '' --startups 1 --catch-up-sizes none \
	  --report docs/benchmarks.md --report-section scale-watch
	./bin/junction bench scale --sizes '' --fanouts none --watched-services 0 --startups 1 \
	  --report docs/benchmarks.md --report-section scale-catchup
	./bin/junction bench heartbeat --local raft,etcd --keys 100000 -c 64 -d 10s \
	  --report docs/benchmarks.md --report-section scale-heartbeat

# console-screenshots runs the console's browser tests (Debian's Chromium)
# and writes a PNG of each screen into docs/console.
console-screenshots: deps-apt
	JUNCTION_REQUIRE_BROWSER=1 $(GO) test -count=1 ./gateway/ui -args -ui.screenshots=$(CURDIR)/docs/console

lint: $(BIN)/staticcheck
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(BIN)/staticcheck ./...

$(BIN)/staticcheck:
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

tools:
	@protoc --version | grep -q "$(PROTOC_VERSION)" || { echo "protoc $(PROTOC_VERSION) is needed, found $$(protoc --version)"; exit 1; }
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	GOBIN=$(BIN) $(GO) install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(GRPC_GATEWAY_VERSION) \
	  github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@$(GRPC_GATEWAY_VERSION)

generate: deps-apt tools
	cd api && protoc -I . -I /usr/include \
	  --go_out=paths=source_relative:. \
	  --go-grpc_out=paths=source_relative:. \
	  --grpc-gateway_out=paths=source_relative,grpc_api_configuration=junction/v1/junction.yaml:. \
	  --openapiv2_out=grpc_api_configuration=junction/v1/junction.yaml,allow_merge=true,merge_file_name=junction/v1/openapi:. \
	  junction/v1/junction.proto

clean:
	rm -rf bin
