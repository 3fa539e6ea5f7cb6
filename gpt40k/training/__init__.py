"""Training: the configuration and its command line (config), the books (data), the loop (trainer),
resuming (resume), what a run reports and writes (reporting, plotting), torchrun (distributed),
signals and the run lock (process), and the CPU speed-ups swapped into the model (cpu_kernels).

Nothing is imported here, so ``python train.py --help`` stays fast: import the module you need.
"""
