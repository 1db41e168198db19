#!/usr/bin/env bash
# GPU check, under 8 minutes on one GPU: the step benchmark with jit on/off, and through
# MirroredStrategy, on the seed's CIFAR-10 networks. Needs TensorFlow with GPU support
# (pip install "tensorflow[and-cuda]==2.21.*") and ktrain installed. Prints JSON lines.
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import tensorflow as tf; print('GPUs:', tf.config.list_physical_devices('GPU'))"
python3 benchmarks/step_throughput.py --jit off on --batch-sizes 64 256 \
    --methods student_alone kd_online kd_cached pkt pkt_kd keras_distiller --steps 30
python3 benchmarks/step_throughput.py --jit on --batch-sizes 256 --methods kd_online pkt --strategy mirrored --steps 30
