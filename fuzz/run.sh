#!/usr/bin/env bash
# Fuzzes the request-body parser and the SDK's variables decoder with libFuzzer (swiftc -sanitize=fuzzer,address),
# each for FUZZ_SECONDS (default 60), from the committed seed corpus in fuzz/corpus/<target>/. Exits non-zero on
# the first input that breaks an oracle, crashes, hangs (over 10 s) or leaks; the input is saved in .build-fuzz/.
# New inputs found are kept in .build-fuzz/corpus-<target>/ (not committed; add the interesting ones to fuzz/corpus/).
set -euo pipefail
export SWIFT_BACKTRACE=enable=no   # a crash must reach libFuzzer, not the Swift runtime's backtracer
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
out=.build-fuzz
mkdir -p "$out/modules"
swiftc_flags=(-sanitize=fuzzer,address -parse-as-library -O -g -swift-version 6)

build() { # name, module name, sources...
    local name=$1 module=$2; shift 2
    swiftc "${swiftc_flags[@]}" -module-name "$module" "$@" -o "$out/$name" 2>&1 | grep -v "ld.gold: warning: Cannot export local symbol" || true
    [ -x "$out/$name" ] || { echo "fuzz: $name did not build"; exit 1; }
}

# The server's parser builds its values as the SDK's `JSON`: the SDK is a module of its own, linked in.
rm -f "$out/libAutoServeModel.a"
swiftc "${swiftc_flags[@]}" -module-name AutoServeModel -emit-module -emit-module-path "$out/modules/AutoServeModel.swiftmodule" \
    -emit-library -static -o "$out/libAutoServeModel.a" Sources/AutoServeModel/*.swift
[ -f "$out/libAutoServeModel.a" ] || { echo "fuzz: the SDK did not build"; exit 1; }
rm -f "$out/json-parser" "$out/variables-decoder"
build json-parser ServingCore -I "$out/modules" -L "$out" -lAutoServeModel Sources/ServingCore/JSONParser.swift \
    Sources/ServingCore/JSONParser+Tree.swift Sources/ServingCore/JSONValue.swift Sources/ServingCore/JSONValue+Serialization.swift \
    fuzz/JSONParserFuzz.swift
build variables-decoder AutoServeModel Sources/AutoServeModel/*.swift fuzz/VariablesDecoderFuzz.swift

status=0
for target in json-parser variables-decoder; do
    work="$out/corpus-$target"
    mkdir -p "$work"
    log="$out/$target.log"
    echo "fuzz: $target for ${seconds}s"
    if ! "$out/$target" "$work" "fuzz/corpus/$target" -max_total_time="$seconds" -max_len=2048 -timeout=10 \
        -artifact_prefix="$out/$target-" -print_final_stats=1 -dict=fuzz/json.dict >"$log" 2>&1; then
        echo "fuzz: $target FAILED; the input is in $out/$target-*"
        grep -E "FUZZ FAILURE|ERROR: |Test unit written" "$log" | head -n 5
        status=1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    echo "fuzz: $target: $runs executions in ${seconds}s ($((runs / seconds)) per second), corpus $(ls "$work" | wc -l) inputs"
done
exit $status
