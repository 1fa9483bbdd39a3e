#!/usr/bin/env bash
# Every GPU row the docs lack, in one call (about 6 minutes on one GPU; budget 8):
# precision throughput of the VAE and NRI, the layer timing table on CUDA (with compiled
# Catnat), a 1-device DDP fit of each family and the CUDA paths of every estimator under
# autocast. Rows are appended to docs/results/*.csv.
#
#   benchmarks/gpu.sh DATA_DIR            # on a machine with a GPU
#   benchmarks/gpu.sh DATA_DIR --smoke    # shrunk, on CPU: checks the script (rows in /tmp)
#
# DATA_DIR holds binarized_mnist.npz; NRI's springs are simulated on first use. PYTHON
# names the interpreter (default: python).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $# -lt 1 ]]; then
    echo "usage: benchmarks/gpu.sh DATA_DIR [--smoke]" >&2
    exit 2
fi
data_dir=$1
shift
timeout 480 "${PYTHON:-python}" benchmarks/gpu_rows.py --data-dir "$data_dir" "$@"
