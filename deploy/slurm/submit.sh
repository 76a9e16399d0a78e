#!/bin/bash
# Submit a sharded encode of N shards and the merge that waits for all of them:
#   DATASET=... OUT=... TEXT_MODEL=... [IMAGE_MODEL=... IMAGE_SIZE=... BATCH=...] submit.sh N
# The settings travel to the jobs in the environment (sbatch's default --export=ALL).
set -euo pipefail
N="${1:?usage: submit.sh N (the number of shards)}"
here="$(cd "$(dirname "$0")" && pwd)"
array=$(sbatch --parsable --array="0-$((N - 1))" "$here/encode-shards.sbatch")
merge=$(sbatch --parsable --dependency="afterok:${array%%;*}" "$here/merge.sbatch")
echo "encode array ${array%%;*} (shards 0..$((N - 1))), merge $merge after it"
