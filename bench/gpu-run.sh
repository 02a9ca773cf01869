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
# With the device tool of this workplace: pack here, then run `bash bench/gpu-run.sh run` there with
# carry [".bundle"].
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
  # Test classes are built by `mvn test-compile`; pack them as a jar.
  mvn -B -ntp -q -Dlowbit.cuda="${LOWBIT_CUDA:-ON}" -pl java test-compile
  (cd java/target/test-classes && jar cf "$bundle/tests.jar" .)
  mvn -B -ntp -q dependency:copy \
    -Dartifact=org.junit.platform:junit-platform-console-standalone:$junit_version \
    -DoutputDirectory="$bundle"
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

run() {
  local out="${OUT:-/tmp/lowbit-gpu-run}"
  mkdir -p "$out"
  local jre=/tmp/lowbit-jre
  rm -rf "$jre" && mkdir -p "$jre" && tar xzf "$bundle/jre.tgz" -C "$jre"
  local java="$jre/jre/bin/java"
  local cp="$bundle/tests.jar"
  for j in "$bundle"/lib/*.jar; do cp="$cp:$j"; done
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
  local jre=/tmp/lowbit-jre
  [ -x "$jre/jre/bin/java" ] || { rm -rf "$jre" && mkdir -p "$jre" && tar xzf "$bundle/jre.tgz" -C "$jre"; }
  local java="$jre/jre/bin/java"
  local cp="$bundle/tests.jar"
  for j in "$bundle"/lib/*.jar; do cp="$cp:$j"; done
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
  local jre=/tmp/lowbit-jre
  [ -x "$jre/jre/bin/java" ] || { rm -rf "$jre" && mkdir -p "$jre" && tar xzf "$bundle/jre.tgz" -C "$jre"; }
  local java="$jre/jre/bin/java"
  local cp="$bundle/tests.jar"
  for j in "$bundle"/lib/*.jar; do cp="$cp:$j"; done
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

case "${1:-}" in
  pack) pack ;;
  run) run ;;
  gemm) gemm ;;
  kernels) kernels ;;
  *) echo "usage: bash bench/gpu-run.sh pack|run|gemm|kernels" >&2; exit 2 ;;
esac
