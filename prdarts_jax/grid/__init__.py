"""The paper's experiment grid: jobs, the local runner and the SLURM runner
(`python -m prdarts_jax.grid`)."""
