#!/usr/bin/env bash
# Fuzzes with libFuzzer (swiftc -sanitize=fuzzer,address) every reader of input from a stranger, each for FUZZ_SECONDS
# (default 60), from the committed seed corpus in fuzz/corpus/<target>/: the request-body parser and the SDK's variables
# decoder (a client's bytes), the LightGBM and XGBoost readers and the schema extraction from Swift sources (a models
# repository's files; seeded with every file that once crashed, hung or grew the server, Tests/Fixtures/hostile), and
# the CSV reader of `autoserve score` and `autoserve drift` (a user's file), and a commit's SSH signature (the
# repository's again). One target per core at a time (FUZZ_JOBS).
# Exits non-zero on the first input that breaks an oracle, crashes, hangs (over -timeout seconds) or grows past
# -rss_limit_mb; the input is saved in .build-fuzz/. New inputs found are kept in .build-fuzz/corpus-<target>/ (not
# committed; add the interesting ones to fuzz/corpus/). The schema target links swift-syntax from the package's release
# build, or its debug build (made here when there is neither).
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

# Two chains of builds, one per core (each swiftc below is one thread): the SDK and ServingCore as modules and the
# targets that link them, beside the targets that compile the SDK's sources in.
build_linked() {
    # The server's parser builds its values as the SDK's `JSON`: the SDK is a module of its own, linked in.
    rm -f "$out/libAutoServeModel.a" "$out/libServingCore.a" "$out/json-parser" "$out/schema" "$out/csv"
    swiftc "${swiftc_flags[@]}" -module-name AutoServeModel -emit-module -emit-module-path "$out/modules/AutoServeModel.swiftmodule" \
        -emit-library -static -o "$out/libAutoServeModel.a" Sources/AutoServeModel/*.swift
    [ -f "$out/libAutoServeModel.a" ] || { echo "fuzz: the SDK did not build"; exit 1; }
    build json-parser ServingCore -I "$out/modules" -L "$out" -lAutoServeModel Sources/ServingCore/JSONParser.swift \
        Sources/ServingCore/JSONParser+Tree.swift Sources/ServingCore/JSONParser+Tensors.swift Sources/ServingCore/JSONValue.swift Sources/ServingCore/JSONValue+Serialization.swift \
        fuzz/JSONParserFuzz.swift
    # The schema extraction: ServingCore's values as a module of their own, then the inspector with swift-syntax's
    # objects (from the release build when there is one: the parser runs ten times faster; else the debug build).
    swiftc "${swiftc_flags[@]}" -module-name ServingCore -I "$out/modules" -emit-module -emit-module-path "$out/modules/ServingCore.swiftmodule" \
        -emit-library -static -o "$out/libServingCore.a" Sources/ServingCore/Diagnostic.swift Sources/ServingCore/ModelSchemas.swift \
        Sources/ServingCore/ModelBuildError.swift Sources/ServingCore/JSONValue.swift Sources/ServingCore/JSONValue+Serialization.swift \
        Sources/ServingCore/JSONParser.swift Sources/ServingCore/JSONParser+Tree.swift
    [ -f "$out/libServingCore.a" ] || { echo "fuzz: ServingCore did not build"; exit 1; }
    build schema PluginBuilder -I "$out/modules" -I "$syntax/Modules" -Xcc -I.build/checkouts/swift-syntax/Sources/_SwiftSyntaxCShims/include -L "$out" -lServingCore -lAutoServeModel \
        Sources/PluginBuilder/ModelInspector.swift Sources/PluginBuilder/ModelSchema.swift fuzz/SchemaFuzz.swift "${syntax_objects[@]}"
    # The CSV reader of `autoserve score` and `autoserve drift`, with the values above.
    build csv DriftReport -I "$out/modules" -L "$out" -lServingCore -lAutoServeModel Sources/DriftReport/RowFile.swift fuzz/CSVFuzz.swift
}
build_compiled_in() {
    rm -f "$out/variables-decoder" "$out/lightgbm" "$out/xgboost" "$out/sshsig"
    build variables-decoder AutoServeModel Sources/AutoServeModel/*.swift fuzz/VariablesDecoderFuzz.swift
    build lightgbm AutoServeModel -D LIGHTGBM Sources/AutoServeModel/*.swift fuzz/TreeModelFuzz.swift
    build xgboost AutoServeModel -D XGBOOST Sources/AutoServeModel/*.swift fuzz/TreeModelFuzz.swift
    # A commit's SSH signature (MODELS_REPO_ALLOWED_SIGNERS): its envelope and base64, without the cryptography.
    build sshsig ModelSource Sources/ModelSource/SSHWire.swift fuzz/SSHSignatureFuzz.swift
}
syntax=.build/release
[ -f "$syntax/SwiftParser.build/Parser.swift.o" ] || syntax=.build/debug
[ -f "$syntax/SwiftParser.build/Parser.swift.o" ] || swift build --product autoserve >/dev/null
syntax_objects=("$syntax"/SwiftSyntax.build/*.o "$syntax"/SwiftParser.build/*.o "$syntax"/SwiftSyntax[0-9]*.build/*.o "$syntax"/_SwiftSyntaxCShims.build/*.o)
build_linked &
linked=$!
build_compiled_in &
compiled_in=$!
wait "$linked" || { echo "fuzz: the linked targets did not build"; exit 1; }
wait "$compiled_in" || { echo "fuzz: the targets with the SDK compiled in did not build"; exit 1; }

# target, the largest input, the dictionary, the seconds an input may take, the memory it may use (MB)
targets=(
    "json-parser 2048 fuzz/json.dict 10 2048"
    "variables-decoder 2048 fuzz/json.dict 10 2048"
    "lightgbm 16384 fuzz/lightgbm.dict 10 1024"
    "xgboost 16384 fuzz/json.dict 10 1024"
    "schema 8192 fuzz/swift.dict 10 1024"
    "csv 8192 fuzz/csv.dict 10 1024"
    "sshsig 4096 fuzz/sshsig.dict 10 1024"
)
# Each target runs on a core of its own, as many at once as there are cores (FUZZ_JOBS): a libFuzzer run is one thread.
jobs=${FUZZ_JOBS:-$(nproc)}
run_target() { # target max_len dict timeout rss: fuzzes one target; its summary goes to $out/<target>.summary
    local target=$1 max_len=$2 dict=$3 timeout=$4 rss=$5
    local work="$out/corpus-$target" log="$out/$target.log" summary="$out/$target.summary"
    mkdir -p "$work"
    if "$out/$target" "$work" "fuzz/corpus/$target" -max_total_time="$seconds" -max_len="$max_len" -timeout="$timeout" \
        -rss_limit_mb="$rss" -artifact_prefix="$out/$target-" -print_final_stats=1 -dict="$dict" >"$log" 2>&1; then
        : >"$summary"
    else
        { echo "fuzz: $target FAILED; the input is in $out/$target-*"; grep -E "FUZZ FAILURE|ERROR: |Test unit written" "$log" | head -n 5; } >"$summary"
    fi
    local runs
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    echo "fuzz: $target: $runs executions in ${seconds}s ($((runs / seconds)) per second), corpus $(ls "$work" | wc -l) inputs" >>"$summary"
}
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, $jobs at a time"
for line in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    read -r target max_len dict timeout rss <<<"$line"
    rm -f "$out/$target.summary"
    run_target "$target" "$max_len" "$dict" "$timeout" "$rss" &
done
wait
status=0
for line in "${targets[@]}"; do
    read -r target _ <<<"$line"
    cat "$out/$target.summary"
    if grep -q "FAILED" "$out/$target.summary"; then status=1; fi
done
exit $status
