# Everyday commands. Each target is a thin wrapper over Pants or a script in scripts/;
# `make help` lists them. The build itself is Pants: see pants.toml and the BUILD files.
SHELL := /bin/bash
PANTS := ./pants
# The WebUI's Node.js (26, installed by scripts/setup.sh) before the machine's own node.
export PATH := $(CURDIR)/.cache/node/bin:$(PATH)

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  \033[33m%-18s\033[0m %s\n", $$1, $$2}'

.PHONY: setup
setup: ## Install what the build and the tests need (idempotent)
	@scripts/setup.sh
	@$(PANTS) --version >/dev/null

.PHONY: run
run: setup ## Run the product locally on SQLite (WebUI :3000, API :5000)
	scripts/run-local.sh

.PHONY: test
test: setup ## Run every test of every language (what CI runs)
	$(PANTS) test ::

.PHONY: lint
lint: setup ## BUILD files up to date, linters and type checks
	$(PANTS) tailor --check update-build-files --check lint check ::

.PHONY: fmt
fmt: setup ## Format the code in place
	$(PANTS) fmt ::

.PHONY: package
package: setup ## Build every PEX and bundle into dist/
	$(PANTS) package ::

.PHONY: bench-build
bench-build: setup ## Build-system figures: cold bootstrap, cold/warm test, PEX sizes
	scripts/bench-build.sh

.PHONY: clean
clean: ## Remove build outputs and stop pantsd
	-scripts/stop-pantsd.sh
	rm -rf dist .pants.d

# --- WebUI (src/js/webui) -------------------------------------------------------------------
.PHONY: run-webui
run-webui: setup ## Run the WebUI on :3000 (built by Pants; /api -> API_URL, default 127.0.0.1:5000)
	$(PANTS) package src/js/webui:webui#bundle
	APP_ENV=$${APP_ENV:-development} API_URL=$${API_URL:-http://127.0.0.1:5000} node "$$(scripts/unpack-webui.sh)/server/main.mjs"

# Screenshots of the WebUI end-to-end tests (also when `make test` runs them).
export WEBUI_E2E_ARTIFACTS ?= $(CURDIR)/dist/test-artifacts/webui

.PHONY: test-e2e
test-e2e: setup ## WebUI end-to-end tests: real API + Express + Chromium (screenshots: dist/test-artifacts/webui)
	$(PANTS) test --force src/js/webui:e2e

.PHONY: webui-openapi
webui-openapi: setup ## Refresh src/js/webui/openapi.json from the API (after an API change; e2e fails on drift)
	$(PANTS) package src/python/myapp/api:api-dev
	node src/js/webui/scripts/update-openapi.mjs dist/src.python.myapp.api/api-dev.pex

.PHONY: bench-webui
bench-webui: setup ## WebUI figures: bundle sizes (gzip), FCP and sign-in -> dashboard in Chromium (median of 5)
	$(PANTS) package src/js/webui:webui#bundle src/python/myapp/api:api-dev
	npm --prefix src/js/webui ci --prefer-offline --no-audit --no-fund --loglevel=error
	node src/js/webui/scripts/bench.mjs "$$(scripts/unpack-webui.sh)" dist/src.python.myapp.api/api-dev.pex

# --- API (src/python/myapp/api) -------------------------------------------------------------
.PHONY: seed-mock-data
seed-mock-data: setup ## Add demo users (each role), rules and audit entries to the dev database (idempotent)
	APP_ENV=$${APP_ENV:-development} $(PANTS) run src/python/myapp/api:cli -- seed-mock-data

.PHONY: smoke-test
smoke-test: setup ## Start the API PEX on SQLite in a temp dir; check health, login, users, rules; stop
	$(PANTS) package src/python/myapp/api:api
	PYTHONPATH=tests/python python3 -m api_smoke.smoke dist/src.python.myapp.api/api.pex

.PHONY: bench-api
bench-api: setup ## API figures: gunicorn (2 workers) on PostgreSQL, wrk on users list, /auth/me, /healthz, login
	$(PANTS) package src/python/myapp/api:api
	BENCH_ROUNDS=$${BENCH_ROUNDS:-3} python3 scripts/bench-api.py  # median of 3: this VM's speed swings

# --- Fast path (src/bpf, src/python/myapp/fastpath) ------------------------------------------
# gRPC on loopback unless FASTPATH_BIND says otherwise: any other address needs FASTPATH_TLS_*.
.PHONY: run-fastpath
run-fastpath: setup ## Run the fast-path agent (root; FASTPATH_INTERFACES=eth0 make run-fastpath)
	FASTPATH_BIND=$${FASTPATH_BIND:-127.0.0.1} $(PANTS) run src/python/myapp/fastpath:fastpath

.PHONY: demo-fastpath
demo-fastpath: setup ## Fast path with traffic to watch (root): agent on a veth pair; set FASTPATH_ADDR to the gRPC address it prints
	$(PANTS) package src/python/myapp/fastpath:demo
	python3 dist/src.python.myapp.fastpath/demo.pex

.PHONY: bench-fastpath
bench-fastpath: setup ## Fast-path figures: test-run ns/packet vs xdp-filter, veth pps vs nftables, AF_XDP drain
	$(PANTS) run tests/python/fastpath_bench/bench.py

# --- Delivery: images, Kubernetes, scaffolding (k8s/, .github/, scripts/images*, new-service) ---
.PHONY: base-images
base-images: setup ## Local stand-ins for the Dockerfiles' base images (debootstrap, once, ~2 min)
	scripts/images-base.sh

.PHONY: images
images: setup ## Build every service image with podman: localhost/myapp-<service>:dev
	scripts/images.sh

.PHONY: test-images
test-images: setup ## Build the images and run them (login through the WebUI, fast path in a netns)
	$(PANTS) test tests/python/deploy/images::

.PHONY: test-unit
test-unit: setup ## Unit tests (beside the code in src/)
	$(PANTS) test src::

.PHONY: test-integration
test-integration: setup ## Cross-service tests in tests/ (contracts, deployment files, images)
	$(PANTS) test tests::

.PHONY: k8s-render
k8s-render: setup ## Render every Kustomize overlay and Helm environment into dist/k8s/
	scripts/k8s-render.sh

.PHONY: k8s-secrets
k8s-secrets: ## Create myapp-secrets (random values) and the fast path CA and mTLS certificate Secrets (CONTEXT=kube-context)
	scripts/k8s-secrets.sh $(CONTEXT)

.PHONY: new-service
new-service: ## Scaffold a Python service: make new-service NAME=billing [PORT=5060]
	scripts/new-service.py --name "$(NAME)" $(if $(PORT),--port $(PORT),)

.PHONY: bench
bench: ## Every benchmark (all bench-* targets)
	@set -e; for t in $$(grep -oE '^bench-[a-z0-9-]+:' $(MAKEFILE_LIST) | tr -d :); do \
	  echo "== make $$t"; $(MAKE) --no-print-directory $$t; done
