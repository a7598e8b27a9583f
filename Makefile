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
	@if [ -f functions/router/main.go ] && [ -f functions/enqueue/main.go ] && [ -f functions/poller/main.go ] && [ -f functions/dequeue/main.go ]; \
	then $(GO) run ./cmd/localrun demo; else echo "demo: not yet: the four functions are still being built (see README)"; fi

clean:
	rm -rf $(BIN) .aws-sam

## build-<LogicalId>: what `sam build` runs per function (template.yaml: CodeUri: ., Metadata:
## BuildMethod: makefile). SAM sets ARTIFACTS_DIR; run by hand it is .aws-sam/build/<LogicalId>.
## Builds for Linux/arm64; export GOARCH_LAMBDA=amd64 when the stack's Architecture is x86_64.
ARTIFACTS_DIR ?= $(CURDIR)/.aws-sam/build/$(patsubst build-%,%,$@)
LAMBDA_BUILD = CGO_ENABLED=0 GOOS=linux GOARCH=$(GOARCH_LAMBDA) $(GO) build -tags lambda.norpc -trimpath -ldflags '-s -w' -o $(ARTIFACTS_DIR)/bootstrap

.PHONY: build-RouterFunction build-EnqueueFunction build-PollerFunction build-DequeueFunction
build-RouterFunction:
	$(LAMBDA_BUILD) ./functions/router
build-EnqueueFunction:
	$(LAMBDA_BUILD) ./functions/enqueue
build-PollerFunction:
	$(LAMBDA_BUILD) ./functions/poller
build-DequeueFunction:
	$(LAMBDA_BUILD) ./functions/dequeue

## invoke: build one function for this machine and invoke it once with an event file, without
## Docker (the `sam local invoke` of this project), e.g.
##   make invoke FN=RouterFunction EVENT=events/router-test-event.json
##   make invoke FN=EnqueueFunction EVENT=events/enqueue-fifo-batch.json INVOKE_FLAGS='-env-file events/env.local.json -env BUCKET=x'
FN ?= RouterFunction
EVENT ?= events/router-s3-put.json
INVOKE_FLAGS ?= -env-file events/env.local.json
invoke:
	$(GO) run ./cmd/invoke -fn $(FN) -event $(EVENT) $(INVOKE_FLAGS)
