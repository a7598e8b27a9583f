# The project's commands. `make demo` and `make test` are the two a newcomer runs.
SHELL := /bin/bash
GO    ?= go
GOARCH_LAMBDA ?= arm64
FUNCTIONS := router enqueue poller dequeue
BIN := bin

.PHONY: test lint vet fmt-check demo build bench invoke emulator clean

## test: every check and every test (what CI runs)
test: fmt-check vet lint
	$(GO) test -count=1 ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null; git ls-files --others --exclude-standard '*.go' 2>/dev/null)); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

lint:
	@if [ -f template.yaml ]; then cfn-lint template.yaml; fi

## build: a bootstrap per function for the local machine, under bin/<name>/bootstrap
build:
	@for f in $(FUNCTIONS); do \
	  [ -d functions/$$f ] || continue; \
	  CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -ldflags '-s -w' -o $(BIN)/$$f/bootstrap ./functions/$$f || exit 1; \
	done

## demo: the whole pipeline locally on the built-in stand-ins
demo:
	@if [ -d cmd/localrun ]; then $(GO) run ./cmd/localrun demo; else echo "demo: not yet (see README)"; fi

clean:
	rm -rf $(BIN) .aws-sam
