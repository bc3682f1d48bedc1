"""What is searched: candidate op values, the DL/DR/UR search spaces and their sizes, genotypes.

Plain Python values only (no JAX); every other layer builds on them."""
