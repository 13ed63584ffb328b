.PHONY: test bench bench-quick
test:
	bash .ci/run
bench:
	bash scripts/bench.sh
bench-quick:
	bash scripts/bench.sh --quick
