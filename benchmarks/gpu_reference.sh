#!/bin/bash
# The GPU half of the reference results (issue #22), as one prepared run for a GPU machine:
# ALIGNN / de-ALIGNN on Table 1's U and Cv rows and on matbench_phonons (5 folds), cgcnn / de-cgcnn on
# the 7,773-structure MP tasks (Table 1 E_g, M; Table 2's M rows), then the GPU epoch times of cgcnn and
# alignn (benchmarks/train_speed.py --gpu-only). Every grid stops cleanly after GT seconds (SIGINT: the
# finished jobs are kept) and whatever finished is packed into $OUT/records.tgz, to be unpacked into
# leaderboard/results and validated there (`bench results validate leaderboard/results`).
#
#   CRYSTALBENCH_DATA_DIR=/path/to/data OUT=/tmp/out GT=300 bash benchmarks/gpu_reference.sh
#
# On a machine without crystalbench's dependencies, put py3 wheels of crystalbench and of what the
# image lacks (pymatgen, pymatgen-core, monty, spglib, ruamel.yaml, uncertainties, palettable, orjson,
# pydantic, pydantic-core, pydantic-settings, python-dotenv, annotated-types, typing-inspection,
# typing-extensions, alignn, aviary-models) in WHEELS=dir; they are installed into /tmp/site.
set -u
OUT=${OUT:?set OUT to a directory for logs and records}
GT=${GT:-300}
T0=$(date +%s)
if [ -n "${WHEELS:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl \
    > "$OUT/install.log" 2>&1 || { echo "install failed"; tail -20 "$OUT/install.log"; exit 1; }
  export PYTHONPATH=/tmp/site${STUBS:+:$STUBS}
fi
export PYTHONUNBUFFERED=1 PYTORCH_NVML_BASED_CUDA_CHECK=1 CRYSTALBENCH_CACHE_DIR=${CRYSTALBENCH_CACHE_DIR:-/tmp/cbcache}
B="python3 -m crystalbench.cli"
{ nvidia-smi -L; nproc; python3 -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available())"; } \
  > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
$B list models > "$OUT/models.txt" 2>&1 || { echo "bench does not start"; tail -20 "$OUT/models.txt"; exit 1; }
R=/tmp/cb-gpu-results
(timeout -s INT "$GT" $B run --suite paper-table1 -m alignn -m de-alignn -t phonon_cv -t phonon_u --device cuda \
   --workers 4 --jobs 4 --results-dir $R/t1 > "$OUT/t1.log" 2>&1) &
(timeout -s INT "$GT" $B run --suite matbench-phonons -m alignn -m de-alignn --device cuda \
   --workers 5 --jobs 4 --results-dir $R/mb > "$OUT/mb.log" 2>&1) &
(timeout -s INT "$GT" $B run --suite paper-table1 -m cgcnn -m de-cgcnn -t band_gap -t magnetization --device cuda \
   --workers 2 --jobs 6 --results-dir $R/big > "$OUT/big.log" 2>&1
 left=$(( GT - ($(date +%s) - T0) ))
 [ "$left" -gt 30 ] && timeout -s INT "$left" $B run --suite paper-table2 -m cgcnn -m de-cgcnn \
   -t magnetization_per_atom -t magnetization_per_cell --device cuda --workers 2 --jobs 6 --results-dir $R/big \
   >> "$OUT/big.log" 2>&1) &
wait
echo "grids done after $(( $(date +%s) - T0 )) s"
tail -n 4 "$OUT/t1.log" "$OUT/mb.log" "$OUT/big.log"
timeout 110 python3 benchmarks/train_speed.py --gpu-only --n 1000 --epochs 10 > "$OUT/speed.txt" 2>&1
echo "speed rc=$?"; tail -5 "$OUT/speed.txt"
tar czf "$OUT/records.tgz" -C $R . && echo "records: $(tar tzf "$OUT/records.tgz" | grep -c '\.json$')"
echo "total $(( $(date +%s) - T0 )) s"
