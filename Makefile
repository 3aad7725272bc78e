# The two commands a newcomer needs: `make run` and `make test`. See README.md.
.PHONY: run stop status test
ARGS ?=

run: ## build and start Kafka, PostgreSQL and the three services; print the demo key
	@deploy/local/run.sh

stop: ## stop everything `make run` started
	@deploy/local/stop.sh

status:
	@deploy/local/postgres.sh status; deploy/local/kafka.sh status; deploy/local/services.sh status

test: ## provision what is missing and run the whole test suite
	@deploy/local/test.sh $(ARGS)
