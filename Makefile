# Herald — the two commands that matter: `make run` and `make test`.

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Belt and braces for the gossip.proto clash between protoactor-go/cluster and
# EventStore-Client-Go (see docs/eventlog.md): herald links neither cluster
# today, but a registration conflict must never panic the binary at start.
LDFLAGS_PROTO = -X google.golang.org/protobuf/reflect/protoregistry.conflictPolicy=warn
LDFLAGS = $(LDFLAGS_PROTO) -X github.com/herald-webhooks/herald/internal/cli.Version=$(VERSION)

BIN  = bin/herald
DATA ?= ./data
LISTEN ?= 127.0.0.1:8080

.PHONY: run build test test-short lint bench clean

## run: build and start herald serve on the embedded log in ./data, API on 127.0.0.1:8080
run: build
	./$(BIN) serve --data $(DATA) --listen $(LISTEN)

## build: build bin/herald
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/herald

## test: the whole suite, with the race detector
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

## test-short: the suite without the slow crash and process tests
test-short:
	$(GO) test -short -count=1 ./...

## lint: go vet and staticcheck (installed through go.mod's tool directive)
lint:
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

## bench: the benchmarks whose figures docs/performance.md reports
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./eventlog/embedded/ ./actors/endpoint/ ./signer/ ./egress/

clean:
	rm -rf bin
