.PHONY: build test run demo bench verify simulate
build: ; swift build
test: ; scripts/test.sh
run: ; scripts/run-dev.sh
demo: ; scripts/demo.sh
bench: ; scripts/bench.sh
verify: ; swift run iomtchain chain verify --data-dir ./data
# The longer consensus simulation run (CI runs 300 seeds inside the test suite).
simulate: ; swift run -c release iomtchain simulate --seeds 10000
