.PHONY: build test run bench verify
build: ; swift build
test: ; scripts/test.sh
run: ; scripts/run-dev.sh
bench: ; scripts/bench.sh
verify: ; swift run iomtchain chain verify --data-dir ./data
