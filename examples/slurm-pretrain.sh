#!/usr/bin/env bash
# Pretraining BART-base on 2 nodes x 4 GPUs under SLURM: `sbatch examples/slurm-pretrain.sh` from the repository.
# srun starts one task per GPU; Lightning reads SLURM's variables (SLURM_NTASKS, SLURM_PROCID, SLURM_LOCALID,
# SLURM_NODEID, the node list) through its SLURM environment, so --trainer.num_nodes x --trainer.devices must equal
# --nodes x --ntasks-per-node. The run directory must be on a filesystem every node sees (global rank 0 writes it);
# a requeued job continues at the exact batch with --ckpt_path last (see the README's "Scale-out" section).
#SBATCH --job-name=bart-base
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --time=48:00:00
#SBATCH --signal=SIGTERM@120
set -euo pipefail
RESUME=()
[ -e "runs/pretrain/base-slurm/checkpoints/last.ckpt" ] && RESUME=(--ckpt_path last)
srun bart-pretrain pretrain -c configs/pretrain/base.yaml --trainer.num_nodes 2 --trainer.devices 4 \
  --trainer.strategy sharded --data.train_files "$HOME/corpus/train.jsonl" --run_dir runs/pretrain/base-slurm "${RESUME[@]}"
