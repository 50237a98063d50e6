# replaylink: the two commands a newcomer needs are `make run` and `make test`.
GO        ?= go
BIN       := bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
FUZZTIME  ?= 60s
LISTEN    ?= 127.0.0.1:8080
ADMIN     ?= 127.0.0.1:9090
DEMO_PORT ?= 5050

.PHONY: build run test es-up es-down bench fuzz lint soak clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/replaylink ./cmd/replaylink
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/demo-backend ./examples/demo

# The main job without Elasticsearch: replaylink in front of a bundled demo
# backend, documents printed as JSON lines. e2e/demo_test.go runs this target
# and the commands it prints (and README's), so keep them runnable as printed.
run: build
	@echo "replaylink: proxy on http://$(LISTEN) -> demo backend on 127.0.0.1:$(DEMO_PORT); admin on http://$(ADMIN)"
	@echo "Try, in another terminal:"
	@echo "  curl -H 'openReplaySession.id: 7204916803563247' http://$(LISTEN)/api/cart       # fails with 500"
	@echo "  curl -H 'openReplaySession.id: 7204916803563247' http://$(LISTEN)/api/hello"
	@echo "  xdg-open http://$(ADMIN)/sessions/7204916803563247   # the session page (macOS: open)"
	@echo "  $(BIN)/replaylink lookup $(if $(filter 127.0.0.1:9090,$(ADMIN)),,--admin $(ADMIN) )7204916803563247   # the same, as a table"
	@echo "Documents are printed below as JSON lines; a line with \"_replaces\":true replaces the earlier one of its _id. Ctrl-C stops."
	$(BIN)/replaylink run --listen $(LISTEN) --admin $(ADMIN) --upstream http://127.0.0.1:$(DEMO_PORT) \
		--spool-dir $(BIN)/spool --service-name demo --output - -- $(BIN)/demo-backend -listen 127.0.0.1:$(DEMO_PORT)

# Everything CI runs: vet, format, staticcheck, unit and integration tests with -race
# against a real search node that this target starts and stops itself.
test:
	bash testenv/test.sh

es-up:
	@testenv/es/node.sh up
es-down:
	@testenv/es/node.sh down

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-ed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

bench:
	bash bench/run.sh

# Each fuzz target for $(FUZZTIME) (go test allows one target per run).
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

soak:
	bash testenv/soak.sh

clean:
	rm -rf $(BIN) .es
