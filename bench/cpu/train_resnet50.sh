#!/usr/bin/env bash
# ResNet-50 on CIFAR-10 on the CPU (issue 37): the same command starts the training and resumes it
# after any stop (the state is saved every 5 minutes). Run it in the background:
#   nohup bench/cpu/train_resnet50.sh >> runs/resnet50-cpu/train.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p runs/resnet50-cpu
export PRUNELAB_CACHE="${PRUNELAB_CACHE:-runs/cache}"  # the decoded JPEGs, kept with the run folders
# Not niced: under `nice -n 10` its two OpenMP threads were starved by a test run beside it, 5.3 s a
# step against 1.05 s alone; at the same priority it kept 1.45 s a step beside the same tests.
exec prunelab train --model resnet50 --config recipes/resnet50_cifar10_cpu.toml \
    --data ../shared/data/cifar10/cifar10_subset.npz \
    --train-data ../shared/data/cifar10/cifar10_full_jpeg_q75.npz --out runs/resnet50-cpu
