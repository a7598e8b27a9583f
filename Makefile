# The project's commands. `make demo` and `make test` are the two a newcomer runs.
SHELL := /bin/bash
GO    ?= go
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
	cfn-lint template.yaml

## build: a bootstrap per function for the local machine, under bin/<name>/bootstrap
build:
	@for f in $(FUNCTIONS); do \
	  CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -ldflags '-s -w' -o $(BIN)/$$f/bootstrap ./functions/$$f || exit 1; \
	done

## s3fno: the operator's tool, one static binary at bin/s3fno (README, "Operating it")
.PHONY: s3fno
s3fno:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(BIN)/s3fno ./cmd/s3fno

## demo: the whole pipeline locally on the built-in stand-ins
demo:
	$(GO) run ./cmd/localrun demo

## up: a long-lived local stack (moto_server, the F&O emulator or a real F&O, the four functions, their
## queues and schedules) until Ctrl-C; writes .local/up/env.json for s3fno --env-file. UP_FLAGS passes
## flags on, e.g. UP_FLAGS='-config my-config.json' or, for a sandbox F&O, UP_FLAGS='-fno-base-url https://...'
## with FNO_TENANT_ID, FNO_CLIENT_ID and FNO_CLIENT_SECRET in the environment (go run ./cmd/localrun up -h).
.PHONY: up
UP_FLAGS ?=
up:
	$(GO) run ./cmd/localrun up $(UP_FLAGS)

## bench: the benchmarks in bench/, each sub-case in its own process, ratios to baselines of the same
## run; writes bench/RESULTS.md. BENCH_SIZES="16MiB 256MiB" limits sizes, BENCH_ONLY="import export" parts.
bench:
	GO=$(GO) bash bench/run.sh

clean:
	rm -rf $(BIN) .aws-sam

## build-<LogicalId>: what `sam build` runs per function (template.yaml: CodeUri: ., Metadata:
## BuildMethod: makefile). SAM sets ARTIFACTS_DIR; run by hand it is .aws-sam/build/<LogicalId>.
## Always Linux/arm64, the one architecture template.yaml deploys (Globals: Architectures:
## [arm64]); nothing in the environment or on the command line changes it, so the binary and the
## function cannot disagree. internal/local/samtemplate checks that they agree.
ARTIFACTS_DIR ?= $(CURDIR)/.aws-sam/build/$(patsubst build-%,%,$@)
LAMBDA_BUILD = CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -tags lambda.norpc -trimpath -ldflags '-s -w' -o $(ARTIFACTS_DIR)/bootstrap

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
## Docker (the `sam local invoke` of this project). With LOCAL=1 (the default) it starts moto_server
## and the F&O emulator on 127.0.0.1, provisions the stack, seeds what the event names, points the
## function at them, prints its response and what changed, and stops them. FN is inferred from
## EVENT's name (router-, enqueue-, poller-, dequeue-) when not given. LOCAL=0 runs against the
## endpoints the environment and the env file give (e.g. your own stand-ins or AWS), e.g.
##   make invoke EVENT=events/enqueue-fifo-batch.json
##   make invoke FN=DequeueFunction EVENT=events/dequeue-export-job2.json
##   make invoke LOCAL=0 EVENT=events/router-test-event.json INVOKE_FLAGS='-env-file events/env.local.json -env BUCKET=x'
FN ?=
EVENT ?= events/router-s3-put.json
LOCAL ?= 1
INVOKE_FLAGS ?= -env-file events/env.local.json
invoke:
	$(GO) run ./cmd/invoke $(if $(FN),-fn $(FN)) -event $(EVENT) $(if $(filter 1,$(LOCAL)),-local) $(INVOKE_FLAGS)
