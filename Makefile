# The two commands a newcomer needs: `make run` and `make test`. See README.md.
.PHONY: run stop status test reliability fuzz bench
ARGS ?=

run: ## build and start Kafka, PostgreSQL, Mailpit and the services; print the demo key
	@deploy/local/run.sh

stop: ## stop everything `make run` started
	@deploy/local/stop.sh

status:
	@deploy/local/postgres.sh status; deploy/local/kafka.sh status; deploy/local/mailpit.sh status; deploy/local/services.sh status; deploy/local/gateway.sh status

test: ## provision what is missing and run the whole test suite
	@deploy/local/test.sh $(ARGS)

reliability: ## fuzz the parsers, then inject faults under load on servers of its own; writes RELIABILITY.md
	@deploy/local/reliability.sh $(ARGS)

fuzz: ## only the fuzzing part, FUZZ_SECONDS per target
	@deploy/local/fuzz.sh

bench: ## every benchmark figure beside its raw baseline, on a Kafka and PostgreSQL of its own: BENCHMARKS.md
	@deploy/local/bench.sh
